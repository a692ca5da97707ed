//! Today's layout: one suite, a row per architecture, a column per arm.
use super::{
    make_cell, mark_best, notes, title_tail, CellInput, Judged, Layout, Options, Quantity,
};
use super::{Report, Row};

pub fn build(j: &Judged, opts: &Options) -> Report {
    let q = Quantity::of(opts.metrics[0], opts.which);
    let meta = &j.loaded.meta;
    let all: Vec<&crate::train::record::Record> = j.loaded.records.iter().collect();
    let mut sources = Vec::new();
    let mut rows = Vec::new();
    for arch in &meta.archs {
        let mut cells: Vec<_> = meta
            .arms
            .iter()
            .map(|arm| {
                make_cell(
                    &CellInput {
                        q,
                        records: &j.loaded.records,
                        arch,
                        arm,
                        expected: j.expected,
                        verdict: j.verdict,
                    },
                    &mut sources,
                )
            })
            .collect();
        let mut present: Vec<_> = cells.iter_mut().flatten().collect();
        mark_best(&mut present, q.lower_is_better());
        rows.push(Row {
            labels: vec![arch.clone()],
            cells,
        });
    }
    Report {
        layout: Layout::Ablation,
        metric: opts.metrics[0],
        which: opts.which,
        lower_is_better: q.lower_is_better(),
        title: format!("{}: {}", meta.suite, title_tail(&[q], &all)),
        row_heads: vec!["arch".into()],
        columns: meta.arms.clone(),
        column_metrics: vec![q.name(); meta.arms.len()],
        rows,
        sources,
        notes: notes(&q, &all),
    }
}
