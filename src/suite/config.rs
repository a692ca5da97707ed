//! The resolved configuration: what a suite becomes once every default is
//! filled in, and the [`RunConfig`] of each run (stored in its record and
//! compared when a run is resumed).
use super::arms::{ArmConfig, Double};
use crate::data::DatasetSpec;
use crate::model::ArchSpec;
use crate::schedule::Schedule;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Threads per run unless the suite or `--threads` says otherwise: a fixed
/// number, not "all cores", because results are bit-identical only at a
/// fixed thread count.
pub const DEFAULT_THREADS: usize = 2;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    Fp32,
    /// bf16 autocast for convolutions and matmuls; fp32 weights, loss,
    /// optimizer and BN statistics.
    Bf16,
}

/// Layout of the 4-D weights and of the inputs (`[runtime] memory_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryFormat {
    #[default]
    Contiguous,
    ChannelsLast,
}

/// Where training batches are built (`[runtime] data`): on the host (a
/// producer thread crops, flips and normalises into f32 batches that are
/// copied up) or on the training device: small datasets are uploaded once
/// as u8 and cropped there (`data::device_batch`); ImageNet is decoded,
/// cropped and resized by the loader threads into u8 batches (page-locked
/// on a GPU) that are normalised on the device (`data::pixels`). Both give
/// the same bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataPlacement {
    /// Configs written before the field existed were trained this way.
    #[default]
    Host,
    Device,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `auto`, `cpu`, `cuda`, `cuda:N` as requested.
    pub device: String,
    pub threads: usize,
    /// True when `--threads` replaced the suite's value.
    pub threads_overridden: bool,
    pub precision: Precision,
    pub deterministic: bool,
    /// Checkpoint every this many epochs (and always at the end).
    pub checkpoint_every: u32,
    /// Where batches are built; not compared between runs (same bits).
    #[serde(default)]
    pub data: DataPlacement,
    /// Compared between runs except at its default (configs written before
    /// the field existed were contiguous).
    #[serde(default)]
    pub memory_format: MemoryFormat,
    /// Batches built ahead of the step (the bounded queue between the
    /// loader and the trainer); not compared (same bits).
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// Threads that build batches (decode, crop, resize); 0 = every core
    /// the trainer's `threads` leave free, at least 1. Not compared.
    #[serde(default)]
    pub loader_threads: usize,
}

pub const DEFAULT_PREFETCH: usize = 2;

fn default_prefetch() -> usize {
    DEFAULT_PREFETCH
}

impl RuntimeConfig {
    /// The defaults of a suite's `[runtime]` on `device` with `threads`
    /// (for commands that need a runtime without a suite: `env`, `bench`).
    pub fn plain(device: &str, threads: usize) -> Self {
        RuntimeConfig {
            device: device.to_string(),
            threads,
            threads_overridden: false,
            precision: Precision::Fp32,
            deterministic: true,
            checkpoint_every: 1,
            data: DataPlacement::default(),
            memory_format: MemoryFormat::default(),
            prefetch: DEFAULT_PREFETCH,
            loader_threads: 0,
        }
    }

    /// The loader's thread count on this machine (`loader_threads`, or the
    /// cores `threads` leave free, at least 1).
    pub fn loader_threads(&self) -> usize {
        if self.loader_threads > 0 {
            return self.loader_threads;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.saturating_sub(self.threads).max(1)
    }
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
    pub train: TrainConfig,
    pub runtime: RuntimeConfig,
}

impl RunConfig {
    /// The config as compared between runs (resume, checkpoint hash): JSON
    /// without the dataset's path, since moving the data does not change a
    /// run (what the data is, its fingerprint says).
    pub fn comparable(&self) -> serde_json::Value {
        without_location(serde_json::to_value(self).expect("config serialises"))
    }
}

/// Removes `dataset.path` from a config stored as JSON, and `runtime.data`,
/// `runtime.prefetch` and `runtime.loader_threads` (where and how far ahead
/// batches are built changes no bit).
pub fn without_location(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(d) = v.get_mut("dataset").and_then(|d| d.as_object_mut()) {
        d.remove("path");
    }
    if let Some(r) = v.get_mut("runtime").and_then(|r| r.as_object_mut()) {
        for k in ["data", "prefetch", "loader_threads"] {
            r.remove(k);
        }
        if r.get("memory_format").and_then(|m| m.as_str()) == Some("contiguous") {
            r.remove("memory_format");
        }
    }
    v
}

/// Command-line overrides of suite fields.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub threads: Option<usize>,
    pub device: Option<String>,
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

    #[test]
    fn loader_threads_default_to_the_cores_the_trainer_leaves() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut rt = RuntimeConfig::plain("cpu", 1);
        assert_eq!(rt.loader_threads(), cores.saturating_sub(1).max(1));
        rt.threads = cores + 4;
        assert_eq!(rt.loader_threads(), 1, "at least one");
        rt.loader_threads = 3;
        assert_eq!(rt.loader_threads(), 3, "an explicit count wins");
    }

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
}
