//! ddgsd-bench: a reproducibility harness for Data-Distortion Guided
//! Self-Distillation (Xu & Liu, AAAI 2019).
//!
//! One run, from suite file to table, follows these modules in order:
//! `suite` (parse → resolve → plan) → `data` (+ `stream`, `augment`) →
//! `model` → `loss` → `sgd`/`schedule` → `train` (+ `checkpoint`) →
//! `record` → `results` → `expected` → `check` → `report`. `runner` drives
//! a whole suite; `platform` and `shim` talk to libtorch about the device,
//! threads and determinism.
pub mod atomic;
pub mod augment;
pub mod bench;
pub mod bench_loop;
pub mod calibrate;
pub mod check;
pub mod checkpoint;
pub mod compare;
pub mod data;
pub mod error;
pub mod exec;
pub mod expected;
pub mod feed;
pub mod heap;
pub mod lease;
pub mod loss;
pub mod model;
pub mod paired;
pub mod pin;
pub mod platform;
pub mod plot;
pub mod progress;
pub mod record;
pub mod report;
pub mod results;
pub mod run_state;
pub mod runner;
pub mod schedule;
pub mod sgd;
pub mod shim;
pub mod slurm;
pub mod stats;
pub mod step_accum;
pub mod stream;
pub mod suite;
pub mod train;
pub mod workers;
