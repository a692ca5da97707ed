//! Judging a suite's records against its expected file: bands, claims,
//! checkpoint pins and the dataset fingerprint. The result is a [`Verdict`]
//! that every exporter renders and whose `passed()` decides the exit code.
use crate::gate::expected::{Band, Claim, Expected, Metric};
use crate::gate::paired::{paired, Paired};
use crate::gate::stats::mean_sd;
use crate::results::Loaded;
use crate::train::record::Record;
use crate::util::exit::Exit;
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One (architecture, arm) cell of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub arch: String,
    pub arm: String,
    /// (seed, value) of the table's metric.
    pub values: Vec<(u64, f64)>,
    pub mean: f64,
    pub sd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BandResult {
    pub band: Band,
    pub mean: f64,
    pub n: usize,
    pub pass: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClaimResult {
    pub claim: Claim,
    pub arch: String,
    /// (seed, better - worse) for the seeds both arms have.
    pub diffs: Vec<(u64, f64)>,
    pub mean: f64,
    pub sd: f64,
    /// Paired statistics of `diffs` (95% CI, one-sided p for better > worse).
    pub stats: Paired,
    pub pass: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum PinStatus {
    Match,
    Mismatch {
        expected: String,
        got: String,
    },
    /// The expected file has pins for this platform, but not for this run.
    RunNotPinned,
    /// The expected file has no pins for this platform.
    PlatformNotPinned,
}

#[derive(Debug, Clone, Serialize)]
pub struct PinResult {
    pub run_id: String,
    pub platform: String,
    pub status: PinStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub suite: String,
    pub expected_file: String,
    /// False when there was no expected file: nothing was checked.
    pub checked: bool,
    pub metric: Metric,
    pub archs: Vec<String>,
    pub arms: Vec<String>,
    pub cells: Vec<Cell>,
    pub bands: Vec<BandResult>,
    /// (arch, arm) groups that have runs but no band of any metric.
    pub unbanded: Vec<(String, String)>,
    pub claims: Vec<ClaimResult>,
    pub pins: Vec<PinResult>,
    /// Records whose dataset fingerprint differs from the expected one.
    pub fingerprint_mismatches: Vec<String>,
    pub dataset_fingerprints: Vec<String>,
    /// How `top1_best` was chosen, when a band or claim judges it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_selection: Option<String>,
    /// Runs of the plan (or found, without a recorded plan).
    pub planned: usize,
    /// Planned runs started but without a record.
    pub unfinished: Vec<String>,
    /// Planned runs without a run directory.
    pub never_begun: Vec<String>,
    /// False for a results directory of an earlier version, whose suite.json
    /// does not record the plan: only the run directories found are judged.
    pub plan_known: bool,
}

/// How the best epochs of `records` were chosen, in words: on a held-out
/// validation split, on the test set itself, or a mix.
pub fn best_selection(records: &[&Record]) -> &'static str {
    use crate::train::record::BestOn;
    let val = records
        .iter()
        .filter(|r| r.metrics.best_on == BestOn::Validation)
        .count();
    if val == 0 {
        "top1_best is best on test: the epoch of the best test top-1, chosen on the test set itself"
    } else if val == records.len() {
        "top1_best is the test top-1 at the epoch of the best validation top-1 (held-out split)"
    } else {
        "top1_best: at the epoch of the best validation top-1 for runs with a holdout, best on test for the others"
    }
}

impl Verdict {
    /// Every planned run has a record: a verdict can be reached.
    pub fn complete(&self) -> bool {
        self.unfinished.is_empty() && self.never_begun.is_empty()
    }

    /// The exit code: no verdict while planned runs lack a record, else
    /// pass or out of band. Nothing checked (no expected file) passes: the
    /// caller asked for a table, not a verdict.
    pub fn exit(&self) -> Exit {
        if !self.checked {
            Exit::Pass
        } else if !self.complete() {
            Exit::NoVerdict
        } else {
            Exit::verdict(self.passed())
        }
    }

    pub fn passed(&self) -> bool {
        self.complete()
            && self.checked
            && self.bands.iter().all(|b| b.pass)
            && self.unbanded.is_empty()
            && self.claims.iter().all(|c| c.pass)
            && !self
                .pins
                .iter()
                .any(|p| matches!(p.status, PinStatus::Mismatch { .. }))
            && self.fingerprint_mismatches.is_empty()
            && self.dataset_fingerprints.len() <= 1
    }

    pub fn cell(&self, arch: &str, arm: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.arch == arch && c.arm == arm)
    }

    /// Failed bands of a cell (any metric).
    pub fn failed_bands(&self, arch: &str, arm: &str) -> Vec<&BandResult> {
        self.bands
            .iter()
            .filter(|b| b.band.arch == arch && b.band.arm == arm && !b.pass)
            .collect()
    }

    pub fn has_band(&self, arch: &str, arm: &str) -> bool {
        self.bands
            .iter()
            .any(|b| b.band.arch == arch && b.band.arm == arm)
    }
}

/// `, 95% CI [lo, hi], one-sided p 0.012` (empty below 2 seeds).
fn stats_text(p: &Paired) -> String {
    match (p.ci95, p.p_one_sided) {
        (Some((lo, hi)), Some(pv)) => format!(
            ", 95% CI [{lo:+.2}, {hi:+.2}], one-sided p {}",
            crate::gate::paired::fmt_p(pv)
        ),
        _ => String::new(),
    }
}

fn values(records: &[Record], arch: &str, arm: &str, metric: Metric) -> Vec<(u64, f64)> {
    let mut v: Vec<(u64, f64)> = records
        .iter()
        .filter(|r| r.arch == arch && r.arm == arm)
        .map(|r| (r.seed, metric.of(&r.metrics)))
        .collect();
    v.sort_by_key(|(s, _)| *s);
    v
}

/// Judges `records` (one suite) against `expected`; `archs` and `arms` give
/// the table's order (the suite's own order).
pub fn judge(
    records: &[Record],
    expected: &Expected,
    archs: &[String],
    arms: &[String],
) -> Verdict {
    let metric = Metric::Top1Final;
    let mut cells = Vec::new();
    let groups: BTreeSet<(String, String)> = records
        .iter()
        .map(|r| (r.arch.clone(), r.arm.clone()))
        .collect();
    for arch in archs {
        for arm in arms {
            let v = values(records, arch, arm, metric);
            if v.is_empty() {
                continue;
            }
            let xs: Vec<f64> = v.iter().map(|x| x.1).collect();
            let (mean, sd) = mean_sd(&xs);
            cells.push(Cell {
                arch: arch.clone(),
                arm: arm.clone(),
                values: v,
                mean,
                sd,
            });
        }
    }

    let bands: Vec<BandResult> = expected
        .bands
        .iter()
        .filter(|b| archs.contains(&b.arch) && arms.contains(&b.arm))
        .map(|b| {
            let v = values(records, &b.arch, &b.arm, b.metric);
            let xs: Vec<f64> = v.iter().map(|x| x.1).collect();
            let (mean, _) = mean_sd(&xs);
            let n = xs.len();
            let (pass, reason) = if n != b.seeds {
                (false, format!("{n} runs, the band needs {}", b.seeds))
            } else if (mean - b.centre).abs() <= b.tolerance + 1e-9 {
                (
                    true,
                    format!("{mean:.2} within {:.2} ± {:.2}", b.centre, b.tolerance),
                )
            } else {
                (
                    false,
                    format!("{mean:.2} outside {:.2} ± {:.2}", b.centre, b.tolerance),
                )
            };
            BandResult {
                band: b.clone(),
                mean,
                n,
                pass,
                reason,
            }
        })
        .collect();

    let unbanded: Vec<(String, String)> = groups
        .iter()
        .filter(|(a, m)| !expected.bands.iter().any(|b| &b.arch == a && &b.arm == m))
        .cloned()
        .collect();

    let mut claims = Vec::new();
    for c in &expected.claims {
        let targets: Vec<String> = match &c.arch {
            Some(a) => vec![a.clone()],
            None => archs.to_vec(),
        };
        for arch in targets {
            let better = values(records, &arch, &c.better, c.metric);
            let worse: BTreeMap<u64, f64> = values(records, &arch, &c.worse, c.metric)
                .into_iter()
                .collect();
            let diffs: Vec<(u64, f64)> = better
                .iter()
                .filter_map(|(s, b)| worse.get(s).map(|w| (*s, b - w)))
                .collect();
            let xs: Vec<f64> = diffs.iter().map(|d| d.1).collect();
            let (mean, sd) = mean_sd(&xs);
            let stats = paired(&xs, false);
            let (pass, reason) = if diffs.is_empty() {
                (
                    false,
                    format!("no seed has runs of both `{}` and `{}`", c.better, c.worse),
                )
            } else if mean >= c.min_delta - 1e-9 {
                (
                    true,
                    format!(
                        "mean paired Δ {mean:+.2} ≥ {:+.2}{}",
                        c.min_delta,
                        stats_text(&stats)
                    ),
                )
            } else {
                (
                    false,
                    format!(
                        "mean paired Δ {mean:+.2} < {:+.2}{}",
                        c.min_delta,
                        stats_text(&stats)
                    ),
                )
            };
            claims.push(ClaimResult {
                claim: c.clone(),
                arch,
                diffs,
                mean,
                sd,
                stats,
                pass,
                reason,
            });
        }
    }

    let pins = records
        .iter()
        .map(|r| {
            let status = match expected.pins.get(&r.platform) {
                None => PinStatus::PlatformNotPinned,
                Some(p) => match p.get(&r.run_id) {
                    None => PinStatus::RunNotPinned,
                    Some(sha) if *sha == r.checkpoint_sha256 => PinStatus::Match,
                    Some(sha) => PinStatus::Mismatch {
                        expected: sha.clone(),
                        got: r.checkpoint_sha256.clone(),
                    },
                },
            };
            PinResult {
                run_id: r.run_id.clone(),
                platform: r.platform.clone(),
                status,
            }
        })
        .collect();

    let fingerprint_mismatches = match &expected.dataset_fingerprint {
        Some(fp) => records
            .iter()
            .filter(|r| &r.dataset.fingerprint != fp)
            .map(|r| r.run_id.clone())
            .collect(),
        None => vec![],
    };
    let mut fps: Vec<String> = records
        .iter()
        .map(|r| r.dataset.fingerprint.clone())
        .collect();
    fps.sort();
    fps.dedup();

    let judges_best = expected.bands.iter().any(|b| b.metric == Metric::Top1Best)
        || expected.claims.iter().any(|c| c.metric == Metric::Top1Best);
    let all: Vec<&Record> = records.iter().collect();
    let best_selection = (judges_best && !all.is_empty()).then(|| best_selection(&all).to_string());
    Verdict {
        suite: expected.suite.clone(),
        expected_file: expected.file.display().to_string(),
        checked: !expected.file.as_os_str().is_empty(),
        metric,
        archs: archs.to_vec(),
        arms: arms.to_vec(),
        cells,
        bands,
        unbanded,
        claims,
        pins,
        fingerprint_mismatches,
        dataset_fingerprints: fps,
        best_selection,
        planned: records.len(),
        unfinished: vec![],
        never_begun: vec![],
        plan_known: false,
    }
}

/// Judges a results directory: exactly its plan (runs without a record
/// are listed and leave the verdict open), against `expected`, which must
/// be of its suite and name only its architectures and arms.
pub fn judge_dir(loaded: &Loaded, expected: &Expected) -> Result<Verdict> {
    expected.require_suite(&loaded.meta.suite, "results are of")?;
    expected.require_plan(&loaded.meta.archs, &loaded.meta.arms)?;
    let mut v = judge(
        &loaded.records,
        expected,
        &loaded.meta.archs,
        &loaded.meta.arms,
    );
    v.planned = loaded.planned();
    v.unfinished = loaded.incomplete.clone();
    v.never_begun = loaded.never_begun.clone();
    v.plan_known = loaded.plan_known();
    Ok(v)
}
