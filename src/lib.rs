//! ddgsd-bench: a reproducibility harness for Data-Distortion Guided
//! Self-Distillation (Xu & Liu, AAAI 2019).
//!
//! A folder per subsystem, in layers ([`LAYERS`], top to bottom):
//! - `cli`: the command line (`main.rs` only calls [`cli::main`]);
//! - `schedule`: who trains which run, where (runner, leases, workers, Slurm);
//! - `bench`, `report`: benchmarks; tables and figures;
//! - `gate`: judging results (expected files, check, paired statistics,
//!   compare, calibrate, pin);
//! - `results`: a results directory and its run directories;
//! - `train`: one run (the loop, batches, checkpoints, the record);
//! - `suite`: suite files and the resolved config of every run;
//! - `method`, `optim`: what a step computes (arms, losses); SGD and the lr
//!   schedule;
//! - `model`: the networks and a model's tensors as files;
//! - `data`: datasets, the ChaCha streams, the distortions;
//! - `platform`: the `[runtime]`, the libtorch shim, the heap, the device;
//! - `util`: typed input errors, atomic writes.
//!
//! One run, from suite file to table: `cli::run` → `schedule::runner` →
//! `suite` → `train` (with `data`, `model`, `method`, `optim`) →
//! `train::record` → `results` → `gate::check` → `report`.
pub mod bench;
pub mod cli;
pub mod data;
pub mod gate;
pub mod method;
pub mod model;
pub mod optim;
pub mod platform;
pub mod report;
pub mod results;
pub mod schedule;
pub mod suite;
pub mod train;
pub mod util;

/// The layer order, top to bottom: a folder uses only folders of lower
/// tiers, and the folders of one tier do not use each other
/// (tests/layers.rs reads every `crate::` path under src/ and checks it).
pub const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["schedule"],
    &["bench", "report"],
    &["gate"],
    &["results"],
    &["train"],
    &["suite"],
    &["method", "optim"],
    &["model"],
    &["data"],
    &["platform"],
    &["util"],
];
