//! Suite files: parse (`raw`, serde with unknown fields refused) → resolve
//! (`resolve`, `fields`: defaults, presets, checks) into the resolved config
//! of every run (`config`; `teacher`: the runs a run depends on, and the
//! order that puts it after them) → a plan of runs (`plan`) and worker
//! shares (`partition`).
//!
//! Uses: method, optim, model, data, platform, util.
pub mod config;
pub mod fields;
pub mod partition;
pub mod plan;
pub mod raw;
pub mod resolve;
pub mod teacher;

pub use plan::{Plan, PlannedRun};
pub use resolve::{load, ResolvedSuite, RunConfig};
