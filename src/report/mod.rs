//! Tables for papers and CI logs, and figures. [`build`] turns one or more
//! judged results directories into one [`Report`] (the paper's Table 3 layout
//! or the ablation layout); each output format is an [`Exporter`] of it
//! (markdown, LaTeX, CSV, JSON), one file per format; `plot` draws the
//! training curves.
//!
//! Uses: gate, results, train, util.
mod ablation;
mod cell;
mod csv;
mod input;
mod json;
mod latex;
mod markdown;
mod paper;
pub mod plot;
mod quantity;
mod verdict;

pub use self::csv::Csv;
pub use cell::Syntax;
pub use input::Input;
pub use json::Json;
pub use latex::{check_label, Latex};
pub use markdown::Markdown;
pub(crate) use quantity::notes;
pub use quantity::{best_selection, Measure, Quantity, Selection};
pub use verdict::{footer, verdict_json};

use crate::gate::check::Verdict;
use crate::gate::expected::{Expected, Metric};
use crate::gate::paired::Paired;
use crate::results::Loaded;
use crate::train::record::Record;
use anyhow::Result;
use serde::Serialize;

/// Rows architecture, columns arm (one suite), or the paper's Table 3: rows
/// architecture and method, columns dataset (several suites).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    Ablation,
    Paper,
}

/// What a cell shows: top-1 or top-5 accuracy, the top-1 error (100 -
/// top-1, what the paper prints), or a calibration metric of the test
/// split: NLL (nats) or ECE (%), lower is better for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Top1,
    Top5,
    Error,
    Nll,
    Ece,
}

/// The accuracy after the last epoch, or the best over epochs (top-5 of
/// "best" is the top-5 at the epoch of the best top-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    Final,
    Best,
}

impl Layout {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ablation" => Some(Layout::Ablation),
            "paper" => Some(Layout::Paper),
            _ => None,
        }
    }
}

impl MetricKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "top1" => Some(MetricKind::Top1),
            "top5" => Some(MetricKind::Top5),
            "error" => Some(MetricKind::Error),
            "nll" => Some(MetricKind::Nll),
            "ece" => Some(MetricKind::Ece),
            _ => None,
        }
    }
}

impl Which {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "final" => Some(Which::Final),
            "best" => Some(Which::Best),
            _ => None,
        }
    }
    /// The epoch named in a heading; for `best`, how the records chose it
    /// (on a held-out validation split, or on the test set itself).
    pub fn label(self, records: &[&Record]) -> String {
        match self {
            Which::Final => "final epoch".into(),
            Which::Best => match best_selection(records) {
                Selection::Validation => "best epoch by validation top-1 (held-out split)".into(),
                Selection::Test => "best on test (the epoch of the best test top-1)".into(),
                Selection::Mixed => {
                    "best epoch (by validation top-1 where a run has a holdout, else on test)"
                        .into()
                }
            },
        }
    }
    /// The band metric a published top-1 number of this kind is filed under.
    pub(crate) fn band_metric(self) -> Metric {
        match self {
            Which::Final => Metric::Top1Final,
            Which::Best => Metric::Top1Best,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BandMark {
    Pass,
    Fail,
    NoBand,
    Unchecked,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Published {
    pub value: f64,
    /// Measured mean minus the published value.
    pub diff: f64,
    /// 1-based index into [`Report::sources`].
    pub source: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// (seed, value) over the runs of the cell.
    pub values: Vec<(u64, f64)>,
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub published: Option<Published>,
    /// This arm minus the baseline, paired over seeds (none for the baseline).
    pub vs_baseline: Option<Paired>,
    /// The best arm of its row (ablation) or of its architecture and column
    /// (paper).
    pub best: bool,
    pub band: BandMark,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// `[arch]` (ablation) or `[arch, method]` (paper).
    pub labels: Vec<String>,
    pub cells: Vec<Option<Cell>>,
}

/// One table, whatever the format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub layout: Layout,
    /// The first (ablation: the only) metric asked for.
    pub metric: MetricKind,
    pub which: Which,
    pub lower_is_better: bool,
    /// Heading (markdown) or caption (LaTeX): names the metric and epoch.
    pub title: String,
    pub row_heads: Vec<String>,
    pub columns: Vec<String>,
    /// What each column shows ([`Quantity::name`]).
    pub column_metrics: Vec<&'static str>,
    pub rows: Vec<Row>,
    /// Footnotes: the sources of the published numbers.
    pub sources: Vec<String>,
    /// Notes under the table: how "best" was selected, which runs have no
    /// value of the metric.
    pub notes: Vec<String>,
}

/// One judged results directory.
pub struct Judged<'a> {
    pub loaded: &'a Loaded,
    pub expected: &'a Expected,
    pub verdict: &'a Verdict,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub layout: Layout,
    /// At least one; several only with the paper layout (a column per
    /// dataset and metric, the shape of the PS-KD table).
    pub metrics: Vec<MetricKind>,
    pub which: Which,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            layout: Layout::Ablation,
            metrics: vec![MetricKind::Top1],
            which: Which::Final,
        }
    }
}

/// Builds the report of `suites` (the ablation layout takes one).
pub fn build(suites: &[Judged], opts: &Options) -> Report {
    match opts.layout {
        Layout::Ablation => ablation::build(&suites[0], opts),
        Layout::Paper => paper::build(suites, opts),
    }
}

pub trait Exporter {
    fn render(&self, r: &Report, suites: &[Judged]) -> Result<String>;
}

/// Exporter for a `--format` value (LaTeX with its defaults).
pub fn exporter(format: &str) -> Option<Box<dyn Exporter>> {
    match format {
        "markdown" | "md" => Some(Box::new(Markdown)),
        "latex" => Some(Box::new(Latex::default())),
        "csv" => Some(Box::new(Csv)),
        "json" => Some(Box::new(Json)),
        _ => None,
    }
}

/// The table and verdict lines `check` prints and writes to table.md.
pub fn check_markdown(j: &Judged) -> Result<String> {
    let r = build(std::slice::from_ref(j), &Options::default());
    Markdown.render(&r, std::slice::from_ref(j))
}

/// Shared by the layouts: one cell from its values, the baseline's values
/// and the expected file.
pub(crate) struct CellInput<'a> {
    pub q: Quantity,
    pub records: &'a [Record],
    pub arch: &'a str,
    pub arm: &'a str,
    pub expected: &'a Expected,
    pub verdict: &'a Verdict,
}

pub(crate) fn values(q: &Quantity, records: &[Record], arch: &str, arm: &str) -> Vec<(u64, f64)> {
    let mut v: Vec<(u64, f64)> = records
        .iter()
        .filter(|r| r.arch == arch && r.arm == arm)
        .filter_map(|r| Some((r.seed, q.value(r)?)))
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

pub(crate) fn make_cell(c: &CellInput, sources: &mut Vec<String>) -> Option<Cell> {
    let values = values(&c.q, c.records, c.arch, c.arm);
    if values.is_empty() {
        return None;
    }
    let xs: Vec<f64> = values.iter().map(|v| v.1).collect();
    let (mean, sd) = crate::gate::stats::mean_sd(&xs);
    let published = c
        .expected
        .bands
        .iter()
        .filter(|b| b.arch == c.arch && b.arm == c.arm)
        .find_map(|b| c.q.published(b).map(|v| (v, b.source.clone())))
        .map(|(value, src)| {
            let source = match sources.iter().position(|s| *s == src) {
                Some(i) => i + 1,
                None => {
                    sources.push(src);
                    sources.len()
                }
            };
            Published {
                value,
                diff: mean - value,
                source,
            }
        });
    let vs_baseline = if c.arm == "baseline" {
        None
    } else {
        let base = values_of(c, "baseline");
        let d = crate::gate::paired::diffs(&values, &base);
        (!d.is_empty()).then(|| {
            let ds: Vec<f64> = d.iter().map(|x| x.1).collect();
            crate::gate::paired::paired(&ds, c.q.lower_is_better())
        })
    };
    let v = c.verdict;
    let band = if !v.failed_bands(c.arch, c.arm).is_empty() {
        BandMark::Fail
    } else if v.has_band(c.arch, c.arm) {
        BandMark::Pass
    } else if v.checked {
        BandMark::NoBand
    } else {
        BandMark::Unchecked
    };
    Some(Cell {
        n: values.len(),
        values,
        mean,
        sd,
        published,
        vs_baseline,
        best: false,
        band,
    })
}

fn values_of(c: &CellInput, arm: &str) -> Vec<(u64, f64)> {
    values(&c.q, c.records, c.arch, arm)
}

/// Marks the best mean among `cells` (ties all marked; needs two cells).
pub(crate) fn mark_best(cells: &mut [&mut Cell], lower_is_better: bool) {
    if cells.len() < 2 {
        return;
    }
    let key = |c: &Cell| if lower_is_better { -c.mean } else { c.mean };
    let best = cells
        .iter()
        .map(|c| key(c))
        .fold(f64::NEG_INFINITY, f64::max);
    for c in cells.iter_mut() {
        c.best = (key(c) - best).abs() < 1e-9;
    }
}

pub(crate) fn title_tail(q: &[Quantity], records: &[&Record]) -> String {
    let mut labels: Vec<String> = Vec::new();
    for l in q.iter().map(Quantity::label) {
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    format!(
        "{}, {}; mean ± sd (n seeds); Δ vs baseline: mean paired difference [95% CI], one-sided paired t-test p",
        labels.join(", "),
        q[0].which.label(records)
    )
}
