//! The paper's Table 3 and the tables of the self-distillation papers: a
//! row per architecture and method, a column per dataset (one suite each;
//! ImageNet gets a top-1 and a top-5 column), or with several metrics a
//! column per dataset and metric (the PS-KD README's shape: top-1 error,
//! top-5 error, ... of one dataset). The best method of an architecture is
//! bold in each column, by that column's direction (lower for errors).
use super::Measure;
use super::{
    make_cell, mark_best, notes, title_tail, CellInput, Judged, Layout, MetricKind, Options,
};
use super::{Quantity, Report, Row};

struct Column<'a> {
    label: String,
    q: Quantity,
    j: &'a Judged<'a>,
}

fn dataset_label(name: &str) -> String {
    match name {
        "cifar10" => "CIFAR-10".into(),
        "cifar100" => "CIFAR-100".into(),
        "imagenet" => "ImageNet".into(),
        other => other.into(),
    }
}

pub fn build(suites: &[Judged], opts: &Options) -> Report {
    let qs: Vec<Quantity> = opts
        .metrics
        .iter()
        .map(|&m| Quantity::of(m, opts.which))
        .collect();
    let q = qs[0];
    let mut columns: Vec<Column> = Vec::new();
    for j in suites {
        let dataset = j
            .loaded
            .records
            .first()
            .map(|r| r.dataset.name.clone())
            .unwrap_or_else(|| j.loaded.meta.suite.clone());
        let mut label = dataset_label(&dataset);
        if suites.iter().filter(|o| same_dataset(o, &dataset)).count() > 1 {
            label = format!("{label} ({})", j.loaded.meta.suite);
        }
        if qs.len() > 1 {
            for &q in &qs {
                let what = q.label();
                columns.push(Column {
                    label: format!("{label} {}", what.trim_end_matches(" (%)")),
                    q,
                    j,
                });
            }
        } else if dataset == "imagenet"
            && matches!(opts.metrics[0], MetricKind::Top1 | MetricKind::Error)
        {
            let q5 = Quantity {
                measure: Measure::Top5,
                ..q
            };
            columns.push(Column {
                label: format!("{label} top-1"),
                q,
                j,
            });
            columns.push(Column {
                label: format!("{label} top-5"),
                q: q5,
                j,
            });
        } else {
            columns.push(Column { label, q, j });
        }
    }
    let archs = union(suites.iter().map(|j| &j.loaded.meta.archs));
    let arms = union(suites.iter().map(|j| &j.loaded.meta.arms));
    let mut sources = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    for arch in &archs {
        let first = rows.len();
        for arm in &arms {
            let cells: Vec<_> = columns
                .iter()
                .map(|c| {
                    make_cell(
                        &CellInput {
                            q: c.q,
                            records: &c.j.loaded.records,
                            arch,
                            arm,
                            expected: c.j.expected,
                            verdict: c.j.verdict,
                        },
                        &mut sources,
                    )
                })
                .collect();
            if cells.iter().any(Option::is_some) {
                rows.push(Row {
                    labels: vec![arch.clone(), arm.clone()],
                    cells,
                });
            }
        }
        for (col, c) in columns.iter().enumerate() {
            let mut group: Vec<_> = rows[first..]
                .iter_mut()
                .filter_map(|r| r.cells[col].as_mut())
                .collect();
            mark_best(&mut group, c.q.lower_is_better());
        }
    }
    let names: Vec<&str> = suites
        .iter()
        .map(|j| j.loaded.meta.suite.as_str())
        .collect();
    let all: Vec<&crate::train::record::Record> =
        suites.iter().flat_map(|j| &j.loaded.records).collect();
    Report {
        layout: Layout::Paper,
        metric: opts.metrics[0],
        which: opts.which,
        lower_is_better: q.lower_is_better(),
        title: format!("{}: {}", names.join(", "), title_tail(&qs, &all)),
        row_heads: vec!["arch".into(), "method".into()],
        column_metrics: columns.iter().map(|c| c.q.name()).collect(),
        columns: columns.into_iter().map(|c| c.label).collect(),
        rows,
        sources,
        notes: notes(&q, &all),
    }
}

fn same_dataset(j: &Judged, dataset: &str) -> bool {
    j.loaded
        .records
        .first()
        .map(|r| r.dataset.name == dataset)
        .unwrap_or(j.loaded.meta.suite == dataset)
}

/// Names in first-seen order over several lists.
fn union<'a>(lists: impl Iterator<Item = &'a Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lists {
        for x in l {
            if !out.contains(x) {
                out.push(x.clone());
            }
        }
    }
    out
}
