//! Who trains which run, where, and when a suite is done: the suite runner,
//! leases on run directories (claims with heartbeats), `--workers` and the
//! processes it supervises, Slurm scripts, the command lines printed to
//! resume or judge, the ranks of data-parallel runs (`ranks`: rank 0
//! leads, the others follow; `run --ranks N` starts them), the binding of a
//! student to its finished teacher (`teacher`) and the progress line.
//!
//! Uses: report, gate, results, train, suite, data, platform, util.
pub mod command;
pub mod lease;
pub mod progress;
pub mod ranks;
pub mod runner;
pub mod slurm;
pub mod supervise;
pub mod teacher;
pub mod workers;
