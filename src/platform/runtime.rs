//! The `[runtime]` of a run: device, threads, precision, memory format,
//! determinism and where batches are built. Part of every run's resolved
//! config; the platform reads it to set libtorch up (`platform::init`).
use serde::{Deserialize, Serialize};

/// Threads per run unless the suite or `--threads` says otherwise: a fixed
/// number, not "all cores", because results are bit-identical only at a
/// fixed thread count.
pub const DEFAULT_THREADS: usize = 2;

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
    /// Ranks of one data-parallel run (1: a single process). Compared (it
    /// changes the bits) except at 1, so configs written before it existed
    /// still resume.
    #[serde(default = "one")]
    pub world_size: usize,
    /// The data group's transport when `world_size` > 1.
    #[serde(default)]
    pub backend: BackendChoice,
    /// Seconds a collective (and the rendezvous) may wait for the other
    /// ranks before the run stops naming the lost rank; not compared.
    #[serde(default = "default_collective_timeout")]
    pub collective_timeout: f64,
    /// TensorBoard event files in every run directory; not compared (they
    /// are a view of the history). Configs written before the field: on.
    #[serde(default = "yes")]
    pub tensorboard: bool,
}

fn yes() -> bool {
    true
}

/// `[runtime] backend`: NCCL on CUDA and gloo on the CPU (`auto`), or
/// either explicitly (gloo also moves CUDA tensors, through the host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    #[default]
    Auto,
    Gloo,
    Nccl,
}

pub const DEFAULT_PREFETCH: usize = 2;
/// Default of `[runtime] collective_timeout` (seconds).
pub const DEFAULT_COLLECTIVE_TIMEOUT: f64 = 300.0;

fn one() -> usize {
    1
}

fn default_collective_timeout() -> f64 {
    DEFAULT_COLLECTIVE_TIMEOUT
}

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
            world_size: 1,
            backend: BackendChoice::Auto,
            collective_timeout: DEFAULT_COLLECTIVE_TIMEOUT,
            tensorboard: true,
        }
    }

    /// The collective timeout as a duration.
    pub fn collective_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.collective_timeout)
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
}
