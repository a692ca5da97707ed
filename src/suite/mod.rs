//! Suite files: parse (`raw`, serde with unknown fields refused) → resolve
//! (`resolve`: defaults, presets, checks) → a plan of runs (`plan`).
pub mod arms;
pub mod config;
pub mod fields;
pub mod partition;
pub mod plan;
pub mod raw;
pub mod resolve;

pub use plan::{Plan, PlannedRun};
pub use resolve::{load, ResolvedSuite, RunConfig};
