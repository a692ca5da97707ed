//! `ddgsd-bench compare A B`: two results directories of one suite (another
//! platform, another commit). A row per run with the Δ (B - A) of each
//! metric and whether the checkpoint hashes are equal; then, per group
//! (arch, arm) and band metric of the expected file, the Δ of the mean over
//! seeds against the band's tolerance. The runs compared are A's plan (and
//! any run B plans that A does not). It fails on a group whose Δ exceeds
//! its tolerance, a group without a band, a run one side does not plan, or
//! different checkpoints from the same deterministic platform; a planned
//! run without a record on either side leaves it without a verdict.
use crate::gate::expected::{Expected, Metric};
use crate::results::Loaded;
use crate::train::record::Record;
use crate::util::error::InputError;
use crate::util::exit::Exit;
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::BTreeSet;
use tabled::{builder::Builder, settings::Style};

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: String,
    /// (A, B) of top1_final, top5_final, top1_best; absent on a missing side.
    pub a: Option<[f64; 3]>,
    pub b: Option<[f64; 3]>,
    pub same_checkpoint: Option<bool>,
    pub same_platform: Option<bool>,
    pub pass: bool,
    /// Planned on the side that lacks its record: not finished yet.
    pub unfinished: bool,
    /// Why it is missing on a side (`not in B's plan`, `unfinished in A`).
    pub missing: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    pub arch: String,
    pub arm: String,
    pub metric: Metric,
    pub mean_a: f64,
    pub mean_b: f64,
    pub tolerance: Option<f64>,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub suite: String,
    pub a: String,
    pub b: String,
    pub expected_file: String,
    pub runs: Vec<RunRow>,
    pub groups: Vec<GroupRow>,
}

impl Comparison {
    pub fn passed(&self) -> bool {
        self.complete() && self.runs.iter().all(|r| r.pass) && self.groups.iter().all(|g| g.pass)
    }

    /// Every run both sides plan has its records.
    pub fn complete(&self) -> bool {
        !self.runs.iter().any(|r| r.unfinished)
    }

    pub fn exit(&self) -> Exit {
        if self.complete() {
            Exit::verdict(self.passed())
        } else {
            Exit::NoVerdict
        }
    }
}

/// Whether a side plans a run: by its recorded plan, or (a suite.json of an
/// earlier version) by having started it.
fn plans(l: &Loaded, id: &str) -> bool {
    match &l.meta.plan {
        Some(p) => p.iter().any(|e| e.run_id == id),
        None => l.incomplete.iter().any(|r| r == id),
    }
}

fn metrics(r: &Record) -> [f64; 3] {
    [
        r.metrics.top1_final,
        r.metrics.top5_final,
        r.metrics.top1_best,
    ]
}

fn mean(records: &[Record], arch: &str, arm: &str, m: Metric) -> Option<f64> {
    let xs: Vec<f64> = records
        .iter()
        .filter(|r| r.arch == arch && r.arm == arm)
        .map(|r| m.of(&r.metrics))
        .collect();
    (!xs.is_empty()).then(|| crate::gate::stats::mean_sd(&xs).0)
}

pub fn compare(a: &Loaded, b: &Loaded, expected: &Expected) -> Result<Comparison> {
    if a.meta.suite != b.meta.suite {
        bail!(InputError::new(
            &b.dir,
            Some("suite"),
            format!(
                "results of suite `{}`, compared with `{}` of suite `{}`",
                b.meta.suite,
                a.dir.display(),
                a.meta.suite
            )
        ));
    }
    expected.require_suite(&a.meta.suite, "results are of")?;
    expected.require_plan(&a.meta.archs, &a.meta.arms)?;
    let planned = |l: &'_ Loaded| -> Vec<String> {
        l.meta
            .plan
            .iter()
            .flatten()
            .map(|e| e.run_id.clone())
            .collect()
    };
    let (pa, pb) = (planned(a), planned(b));
    let ids: BTreeSet<&str> = a
        .records
        .iter()
        .chain(&b.records)
        .map(|r| r.run_id.as_str())
        .chain(pa.iter().map(String::as_str))
        .chain(pb.iter().map(String::as_str))
        .collect();
    let find = |l: &'_ Loaded, id: &str| l.records.iter().find(|r| r.run_id == id).cloned();
    let runs = ids
        .into_iter()
        .map(|id| {
            let (ra, rb) = (find(a, id), find(b, id));
            let same_platform = match (&ra, &rb) {
                (Some(x), Some(y)) => Some(x.platform == y.platform),
                _ => None,
            };
            let same_checkpoint = match (&ra, &rb) {
                (Some(x), Some(y)) => Some(x.checkpoint_sha256 == y.checkpoint_sha256),
                _ => None,
            };
            let deterministic = ra
                .as_ref()
                .map(|r| !r.platform.contains("nondeterministic"))
                .unwrap_or(false);
            let pass = ra.is_some()
                && rb.is_some()
                && !(same_platform == Some(true)
                    && deterministic
                    && same_checkpoint == Some(false));
            let side = |l: &Loaded, r: &Option<Record>, name: &str| match r {
                Some(_) => None,
                None if plans(l, id) => Some((true, format!("unfinished in {name}"))),
                None if l.plan_known() => Some((false, format!("not in {name}'s plan"))),
                None => Some((false, format!("missing in {name}"))),
            };
            let gaps: Vec<(bool, String)> = [side(a, &ra, "A"), side(b, &rb, "B")]
                .into_iter()
                .flatten()
                .collect();
            RunRow {
                run_id: id.to_string(),
                a: ra.as_ref().map(metrics),
                b: rb.as_ref().map(metrics),
                same_checkpoint,
                same_platform,
                pass,
                unfinished: gaps.iter().any(|g| g.0),
                missing: (!gaps.is_empty()).then(|| {
                    gaps.iter()
                        .map(|g| g.1.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
            }
        })
        .collect();
    let mut groups = Vec::new();
    let pairs: BTreeSet<(String, String)> = a
        .records
        .iter()
        .chain(&b.records)
        .map(|r| (r.arch.clone(), r.arm.clone()))
        .collect();
    for (arch, arm) in pairs {
        let bands: Vec<_> = expected
            .bands
            .iter()
            .filter(|x| x.arch == arch && x.arm == arm)
            .collect();
        let metrics: Vec<(Metric, Option<f64>)> = if bands.is_empty() {
            vec![(Metric::Top1Final, None)]
        } else {
            bands
                .iter()
                .map(|x| (x.metric, Some(x.tolerance)))
                .collect()
        };
        for (metric, tolerance) in metrics {
            let (ma, mb) = (
                mean(&a.records, &arch, &arm, metric),
                mean(&b.records, &arch, &arm, metric),
            );
            let (mean_a, mean_b) = (ma.unwrap_or(f64::NAN), mb.unwrap_or(f64::NAN));
            let pass = matches!(tolerance, Some(t) if (mean_b - mean_a).abs() <= t + 1e-9);
            groups.push(GroupRow {
                arch: arch.clone(),
                arm: arm.clone(),
                metric,
                mean_a,
                mean_b,
                tolerance,
                pass,
            });
        }
    }
    Ok(Comparison {
        suite: a.meta.suite.clone(),
        a: a.dir.display().to_string(),
        b: b.dir.display().to_string(),
        expected_file: expected.file.display().to_string(),
        runs,
        groups,
    })
}

fn delta(a: Option<[f64; 3]>, b: Option<[f64; 3]>, i: usize) -> String {
    match (a, b) {
        (Some(x), Some(y)) => format!("{:.2} → {:.2} (Δ {:+.2})", x[i], y[i], y[i] - x[i]),
        (Some(x), None) => format!("{:.2} → missing", x[i]),
        (None, Some(y)) => format!("missing → {:.2}", y[i]),
        (None, None) => "–".into(),
    }
}

/// Markdown: the run table, the group lines and the verdict.
pub fn markdown(c: &Comparison) -> String {
    let mut t = Builder::default();
    t.push_record([
        "run",
        "top1_final (A → B)",
        "top5_final (A → B)",
        "top1_best (A → B)",
        "checkpoint",
    ]);
    for r in &c.runs {
        let ck = match (r.same_checkpoint, r.same_platform) {
            (Some(true), _) => "equal".to_string(),
            (Some(false), Some(true)) if !r.pass => "differs (same platform) ✗".into(),
            (Some(false), Some(true)) => "differs (same platform)".into(),
            (Some(false), _) => "differs (other platform)".into(),
            _ => format!(
                "{} ✗",
                r.missing.as_deref().unwrap_or("missing on one side")
            ),
        };
        t.push_record([
            r.run_id.clone(),
            delta(r.a, r.b, 0),
            delta(r.a, r.b, 1),
            delta(r.a, r.b, 2),
            ck,
        ]);
    }
    let mut table = t.build();
    table.with(Style::markdown());
    let mut out = format!(
        "### compare {}: A = {}, B = {}\n\n{table}\n\nGroups (mean over seeds, B - A, against the tolerance of {}):\n",
        c.suite, c.a, c.b, c.expected_file
    );
    for g in &c.groups {
        let d = g.mean_b - g.mean_a;
        out.push_str(&match g.tolerance {
            Some(t) => format!(
                "- {} {} / {} {}: {:.2} → {:.2}, Δ {d:+.2} {} ± {t:.2}\n",
                if g.pass { "✓" } else { "✗" },
                g.arch,
                g.arm,
                g.metric.name(),
                g.mean_a,
                g.mean_b,
                if g.pass { "within" } else { "outside" }
            ),
            None => format!(
                "- ✗ {} / {}: no band in the expected file, cannot judge (Δ top1_final {d:+.2})\n",
                g.arch, g.arm
            ),
        });
    }
    let equal = c
        .runs
        .iter()
        .filter(|r| r.same_checkpoint == Some(true))
        .count();
    let unfinished = c.runs.iter().filter(|r| r.unfinished).count();
    out.push_str(&format!(
        "\nCheckpoints: {equal} of {} runs equal.\nVerdict: {}\n",
        c.runs.len(),
        match c.exit() {
            Exit::NoVerdict => format!("none: {unfinished} planned runs are unfinished"),
            Exit::Pass => "PASS".into(),
            _ => "FAIL".into(),
        }
    ));
    out
}
