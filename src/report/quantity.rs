//! What a table cell measures ([`Quantity`]: top-1 or top-5 as accuracy or
//! error, the test NLL or ECE; after the last epoch or at the best epoch),
//! its value in a record, and the notes a table of such values carries: how
//! the best epochs were chosen ([`Selection`]: on a held-out validation
//! split or on the test set) and which runs have no value.
use super::{MetricKind, Which};
use crate::gate::expected::Band;
use crate::train::record::{BestOn, Record};

/// How the best epochs of a set of records were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Validation,
    Test,
    Mixed,
}

pub fn best_selection(records: &[&Record]) -> Selection {
    let val = records
        .iter()
        .filter(|r| r.metrics.best_on == BestOn::Validation)
        .count();
    match val {
        0 => Selection::Test,
        v if v == records.len() => Selection::Validation,
        _ => Selection::Mixed,
    }
}

/// What a quantity measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Top1,
    Top5,
    Nll,
    Ece,
}

/// One quantity of a record: top-1 or top-5 as accuracy or error, or the
/// test NLL or ECE; after the last epoch or at the best epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    pub measure: Measure,
    /// 100 - accuracy (top-1 and top-5 only).
    pub error: bool,
    pub which: Which,
}

impl Quantity {
    pub fn of(metric: MetricKind, which: Which) -> Self {
        let measure = match metric {
            MetricKind::Top1 | MetricKind::Error => Measure::Top1,
            MetricKind::Top5 => Measure::Top5,
            MetricKind::Nll => Measure::Nll,
            MetricKind::Ece => Measure::Ece,
        };
        Quantity {
            measure,
            error: metric == MetricKind::Error,
            which,
        }
    }

    /// The value of `r`; `None` where the record has none (NLL and ECE of
    /// records written before they were logged).
    pub fn value(&self, r: &Record) -> Option<f64> {
        let m = &r.metrics;
        let at_best = || r.history.iter().find(|h| h.epoch == m.best_epoch);
        let last = || r.history.last();
        let v = match (self.measure, self.which) {
            (Measure::Top1, Which::Final) => m.top1_final,
            (Measure::Top1, Which::Best) => m.top1_best,
            (Measure::Top5, Which::Final) => m.top5_final,
            (Measure::Top5, Which::Best) => at_best().map(|h| h.test_top5).unwrap_or(m.top5_final),
            (Measure::Nll, Which::Final) => m.nll_final.or_else(|| last()?.test_nll)?,
            (Measure::Nll, Which::Best) => at_best()?.test_nll?,
            (Measure::Ece, Which::Final) => m.ece_final.or_else(|| last()?.test_ece)?,
            (Measure::Ece, Which::Best) => at_best()?.test_ece?,
        };
        Some(if self.error { 100.0 - v } else { v })
    }

    pub fn label(&self) -> String {
        match self.measure {
            Measure::Nll => "test NLL (nats)".into(),
            Measure::Ece => "test ECE (%)".into(),
            Measure::Top1 | Measure::Top5 => {
                let k = if self.measure == Measure::Top5 {
                    "top-5"
                } else {
                    "top-1"
                };
                let e = if self.error { "error" } else { "accuracy" };
                format!("{k} {e} (%)")
            }
        }
    }

    /// The short name of the quantity (CSV's `metric` column): `top1`,
    /// `top5`, `error` (top-1 error), `top5_error`, `nll`, `ece`.
    pub fn name(&self) -> &'static str {
        match (self.measure, self.error) {
            (Measure::Top1, false) => "top1",
            (Measure::Top5, false) => "top5",
            (Measure::Top1, true) => "error",
            (Measure::Top5, true) => "top5_error",
            (Measure::Nll, _) => "nll",
            (Measure::Ece, _) => "ece",
        }
    }

    pub fn lower_is_better(&self) -> bool {
        self.error || matches!(self.measure, Measure::Nll | Measure::Ece)
    }

    /// The published number of a band in this quantity's units, if the band
    /// is a publication's and of this quantity (published bands are top-1).
    pub(crate) fn published(&self, b: &Band) -> Option<f64> {
        if !b.published || self.measure != Measure::Top1 || b.metric != self.which.band_metric() {
            return None;
        }
        Some(if self.error {
            100.0 - b.centre
        } else {
            b.centre
        })
    }
}

/// The notes under a table of `records`: how the best epochs were chosen
/// (for `best`), and how many runs have no value of the quantity.
pub(crate) fn notes(q: &Quantity, records: &[&Record]) -> Vec<String> {
    let mut out = Vec::new();
    if q.which == Which::Best {
        let holdouts: Vec<String> = {
            let mut v: Vec<String> = records
                .iter()
                .filter_map(|r| r.dataset.holdout.as_ref())
                .map(|h| h.n.to_string())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        match best_selection(records) {
            Selection::Validation => out.push(format!(
                "best: the test value at the epoch of the best validation top-1 on the held-out split ([dataset] holdout = {}); the selection never saw the test set.",
                holdouts.join(", ")
            )),
            Selection::Test => out.push(
                "best on test: the epoch is the one of the best test top-1, chosen on the test set itself (an optimistic number); a suite with `[dataset] holdout` (suites/*-tuning.toml) selects on a validation split instead.".into(),
            ),
            Selection::Mixed => out.push(format!(
                "best: {} of {} runs chose the epoch by validation top-1 on a held-out split ([dataset] holdout = {}), the others on the test set itself (best on test, an optimistic number).",
                records
                    .iter()
                    .filter(|r| r.metrics.best_on == BestOn::Validation)
                    .count(),
                records.len(),
                holdouts.join(", ")
            )),
        }
    }
    let missing = records.iter().filter(|r| q.value(r).is_none()).count();
    if missing > 0 {
        out.push(format!(
            "{missing} of {} runs have no {} (records written before it was logged): they are left out of the cells, so n counts only the runs that have it, and a cell without any reads –.",
            records.len(),
            q.label()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::check::judge;
    use crate::gate::expected::Expected;
    use crate::report::{build, Judged, Layout, Options};
    use std::path::Path;

    #[test]
    fn calibration_metrics_are_lower_is_better_in_deltas_and_bold() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/cifar100");
        let mut loaded = crate::results::load(&dir).unwrap();
        for r in &mut loaded.records {
            let base = match r.arm.as_str() {
                "baseline" => 1.0,
                "two_branch" => 0.9,
                _ => 0.8,
            };
            r.metrics.nll_final = Some(base + 0.01 * r.seed as f64);
            r.metrics.ece_final = Some(10.0 * base);
        }
        let e = Expected::none(&loaded.meta.suite);
        let v = judge(&loaded.records, &e, &loaded.meta.archs, &loaded.meta.arms);
        let j = Judged {
            loaded: &loaded,
            expected: &e,
            verdict: &v,
        };
        for metric in [MetricKind::Nll, MetricKind::Ece] {
            let r = build(
                std::slice::from_ref(&j),
                &Options {
                    layout: Layout::Ablation,
                    metrics: vec![metric],
                    which: Which::Final,
                },
            );
            assert!(r.lower_is_better);
            let row = &r.rows[0];
            let cells: Vec<_> = row.cells.iter().map(|c| c.as_ref().unwrap()).collect();
            assert_eq!(
                cells.iter().map(|c| c.best).collect::<Vec<_>>(),
                [false, false, true],
                "the lowest mean is bold"
            );
            let d = cells[2].vs_baseline.as_ref().unwrap();
            assert!(d.mean < 0.0);
            // Lower is better: a consistent drop is evidence for "better".
            assert!(d.p_one_sided.unwrap() < 0.01, "{d:?}");
            assert!(r.notes.is_empty(), "{:?}", r.notes);
        }
        // At the best epoch: the fixture's history has no NLL, so no value.
        let q = Quantity::of(MetricKind::Nll, Which::Best);
        assert_eq!(q.value(&loaded.records[0]), None);
        let all: Vec<&Record> = loaded.records.iter().collect();
        assert_eq!(best_selection(&all), Selection::Test);
        assert!(notes(&q, &all)[0].starts_with("best on test"));
    }
}
