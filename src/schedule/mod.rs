//! Who trains which run, where, and when a suite is done: the suite runner,
//! leases on run directories (claims with heartbeats), `--workers`, Slurm
//! scripts and the progress line.
//!
//! Uses: report, gate, results, train, suite, data, platform, util.
pub mod lease;
pub mod progress;
pub mod runner;
pub mod slurm;
pub mod workers;
