//! The resolved configuration: what a suite becomes once every default is
//! filled in, and the [`RunConfig`] of each run (stored in its record and
//! compared when a run is resumed).
use crate::data::holdout::HoldoutSpec;
use crate::data::DatasetSpec;
use crate::method::arms::{ArmConfig, Double};
use crate::model::ArchSpec;
use crate::optim::lr_schedule::Schedule;
use crate::platform::runtime::RuntimeConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Effective epochs (doubled for `baseline_2x`).
    pub epochs: u32,
    /// Images per step (each forwarded once per view).
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Bins of the expected calibration error logged every epoch
    /// (`[train] ece_bins`); compared between runs only when not the
    /// default, so configs written before the field existed still resume.
    #[serde(default = "default_ece_bins")]
    pub ece_bins: usize,
}

/// Equal-width confidence bins of the ECE unless `[train] ece_bins` says
/// otherwise (Guo et al. 2017; PS-KD's code uses 10: docs/method.md §14).
pub const DEFAULT_ECE_BINS: usize = 15;

fn default_ece_bins() -> usize {
    DEFAULT_ECE_BINS
}

/// Everything one run depends on, besides the dataset's bytes and the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub suite: String,
    pub run_id: String,
    pub arch: ArchSpec,
    pub arm: ArmConfig,
    pub seed: u64,
    pub dataset: DatasetSpec,
    /// The validation split taken out of training (`[dataset] holdout`);
    /// absent (and so not compared) without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutSpec>,
    pub train: TrainConfig,
    pub runtime: RuntimeConfig,
    /// The network this run distils from (an arm whose method has a
    /// teacher); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<super::teacher::Teacher>,
}

impl RunConfig {
    /// The config as compared between runs (resume, checkpoint hash): JSON
    /// without the dataset's path, since moving the data does not change a
    /// run (what the data is, its fingerprint says).
    pub fn comparable(&self) -> serde_json::Value {
        without_location(serde_json::to_value(self).expect("config serialises"))
    }

    /// The teacher run of the same suite this run waits for, if any.
    pub fn teacher_run(&self) -> Option<&str> {
        self.teacher.as_ref().and_then(|t| t.run.as_deref())
    }
}

/// A comparable config as planned, before the run started: without the
/// checkpoint hash of a teacher that is a run of the suite (it is bound
/// when the student starts; `results::load` checks it against the
/// teacher's record).
pub fn as_planned(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(t) = v.get_mut("teacher").and_then(|t| t.as_object_mut()) {
        if t.contains_key("run") {
            t.remove("checkpoint_sha256");
        }
    }
    v
}

/// Removes `dataset.path` and `teacher.file` from a config stored as JSON, and `runtime.data`,
/// `runtime.prefetch` and `runtime.loader_threads` (where and how far ahead
/// batches are built changes no bit), `runtime.collective_timeout`,
/// `runtime.world_size` and `backend` of a single-process run,
/// `runtime.tensorboard` (event files are a view of the history) and
/// `train.ece_bins` at its default.
pub fn without_location(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(d) = v.get_mut("dataset").and_then(|d| d.as_object_mut()) {
        d.remove("path");
    }
    if let Some(t) = v.get_mut("teacher").and_then(|t| t.as_object_mut()) {
        t.remove("file");
    }
    if let Some(r) = v.get_mut("runtime").and_then(|r| r.as_object_mut()) {
        for k in [
            "data",
            "prefetch",
            "loader_threads",
            "collective_timeout",
            "tensorboard",
        ] {
            r.remove(k);
        }
        // One process: world size and backend were not fields yet, and the
        // backend means nothing there.
        if r.get("world_size").and_then(|w| w.as_u64()).unwrap_or(1) == 1 {
            r.remove("world_size");
            r.remove("backend");
        }
        if r.get("memory_format").and_then(|m| m.as_str()) == Some("contiguous") {
            r.remove("memory_format");
        }
    }
    if let Some(t) = v.get_mut("train").and_then(|t| t.as_object_mut()) {
        if t.get("ece_bins").and_then(|b| b.as_u64()) == Some(DEFAULT_ECE_BINS as u64) {
            t.remove("ece_bins");
        }
    }
    v
}

/// Command-line overrides of suite fields.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub threads: Option<usize>,
    pub device: Option<String>,
    /// `--ranks N` or the launcher's world size: `runtime.world_size`.
    pub world_size: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ResolvedSuite {
    pub name: String,
    pub description: String,
    pub file: PathBuf,
    pub expected: PathBuf,
    pub archs: Vec<ArchSpec>,
    pub arms: Vec<ArmConfig>,
    pub seeds: Vec<u64>,
    pub dataset: DatasetSpec,
    pub runs: Vec<RunConfig>,
}

/// `<arch id>__<arm>__s<seed>`: the run's directory name and its key in
/// expected files.
pub fn run_id(arch: &ArchSpec, arm: &str, seed: u64) -> String {
    format!("{}__{}__s{}", arch.id(), arm, seed)
}

/// The schedule an arm really runs: `baseline_2x` doubles epochs (and with
/// `double = "batch"` the batch too), scaling milestones and warm-up.
pub fn effective_train(t: &TrainConfig, arm: &ArmConfig) -> TrainConfig {
    let mut t = t.clone();
    if let Some(d) = arm.double {
        t.epochs *= 2;
        t.schedule.milestones = t.schedule.milestones.iter().map(|m| m * 2).collect();
        t.schedule.warmup_epochs *= 2;
        if d == Double::Batch {
            t.batch_size *= 2;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::runtime::DataPlacement;

    #[test]
    fn where_and_how_far_ahead_batches_are_built_is_not_compared() {
        let rt = |data, prefetch, loader_threads| {
            let v = serde_json::json!({ "runtime": RuntimeConfig {
                data,
                prefetch,
                loader_threads,
                ..RuntimeConfig::plain("cpu", 2)
            }});
            without_location(v)
        };
        assert_eq!(
            rt(DataPlacement::Host, 2, 0),
            rt(DataPlacement::Device, 7, 3)
        );
        let v = rt(DataPlacement::Host, 2, 0);
        assert_eq!(v["runtime"]["threads"], 2, "threads stay compared");
    }

    #[test]
    fn world_size_is_compared_only_above_one() {
        let plain = RuntimeConfig::plain("cpu", 2);
        let old = without_location(serde_json::json!({ "runtime": plain }));
        assert!(old["runtime"].get("world_size").is_none());
        assert!(old["runtime"].get("backend").is_none());
        assert!(old["runtime"].get("collective_timeout").is_none());
        let two = RuntimeConfig {
            world_size: 2,
            collective_timeout: 5.0,
            ..plain
        };
        let v = without_location(serde_json::json!({ "runtime": two }));
        assert_eq!(v["runtime"]["world_size"], 2);
        assert_eq!(v["runtime"]["backend"], "auto");
        assert!(v["runtime"].get("collective_timeout").is_none());
    }

    #[test]
    fn fields_added_later_leave_the_compared_config_unchanged_at_their_defaults() {
        // tensorboard (never compared), ece_bins at 15 and no holdout: the
        // config hash of a run that uses none of them is what it was before
        // they existed, so older results directories still resume.
        let v = serde_json::json!({
            "runtime": RuntimeConfig::plain("cpu", 2),
            "train": { "epochs": 1, "ece_bins": DEFAULT_ECE_BINS },
        });
        let c = without_location(v);
        assert!(c["runtime"].get("tensorboard").is_none());
        assert!(c["train"].get("ece_bins").is_none());
        let v = serde_json::json!({ "train": { "ece_bins": 10 } });
        assert_eq!(
            without_location(v)["train"]["ece_bins"],
            10,
            "compared when set"
        );
        let old: RuntimeConfig = serde_json::from_value(serde_json::json!({
            "device": "cpu", "threads": 2, "threads_overridden": false,
            "precision": "fp32", "deterministic": true, "checkpoint_every": 1
        }))
        .unwrap();
        assert!(old.tensorboard, "configs written before the field: on");
    }
}
