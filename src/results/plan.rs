//! The plan a results directory was made for, recorded in its suite.json:
//! every run id with its comparable resolved config and that config's hash.
//! `run` refuses a suite whose plan contradicts it; the gate judges exactly
//! this plan and refuses a run directory whose config is not the plan's (a
//! run merged from a machine with another suite file or other flags).
use super::run_dir::{drift, first_difference, value_at};
use crate::suite::{ResolvedSuite, RunConfig};
use crate::util::error::InputError;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// One run of a recorded plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanEntry {
    pub run_id: String,
    /// `train::config_sha256` of the run's config (its checkpoints carry it).
    pub config_sha256: String,
    /// The comparable config (`RunConfig::comparable`).
    pub config: Value,
}

impl PlanEntry {
    pub fn of(cfg: &RunConfig) -> Self {
        PlanEntry {
            run_id: cfg.run_id.clone(),
            config_sha256: crate::train::config_sha256(cfg),
            config: cfg.comparable(),
        }
    }
}

pub fn plan_of(suite: &ResolvedSuite) -> Vec<PlanEntry> {
    suite.runs.iter().map(PlanEntry::of).collect()
}

/// `run` into a directory with a recorded plan: every run both plans have
/// must have the same config (else the field and the flag are named); the
/// suite may add runs (more seeds, a new arm), not drop any.
pub fn check_suite_against(
    meta_path: &Path,
    recorded: &[PlanEntry],
    suite: &ResolvedSuite,
) -> Result<()> {
    for e in recorded {
        let Some(cfg) = suite.runs.iter().find(|c| c.run_id == e.run_id) else {
            let dropped: Vec<&str> = recorded
                .iter()
                .filter(|e| !suite.runs.iter().any(|c| c.run_id == e.run_id))
                .map(|e| e.run_id.as_str())
                .collect();
            bail!(InputError::new(
                meta_path,
                Some("plan"),
                format!(
                    "this results directory plans {} run(s) that {} does not: {}; it belongs to the suite it was made with: run into another --out (copy the finished run directories you want there)",
                    dropped.len(),
                    suite.file.display(),
                    dropped.join(", ")
                )
            ));
        };
        if let Some(err) = drift(meta_path, Some(&e.run_id), &e.config, &cfg.comparable()) {
            bail!(err);
        }
    }
    Ok(())
}

/// The gate on a run directory: its config (`path`: its record.json or
/// config.json) must be the plan's for its run id.
pub fn check_run_against(
    path: &Path,
    run_id: &str,
    config: Value,
    plan: &[PlanEntry],
) -> Result<()> {
    let config = crate::suite::config::as_planned(crate::suite::config::without_location(config));
    let Some(e) = plan.iter().find(|e| e.run_id == run_id) else {
        bail!(InputError::new(
            path,
            None,
            format!(
                "run `{run_id}` is not in the plan of this results directory (suite.json); a run directory of another suite file was merged here: judge it where it was made"
            )
        ));
    };
    if let Some(field) = first_difference(&e.config, &config, "") {
        bail!(InputError::new(
            path,
            Some(&field),
            format!(
                "run `{run_id}` was trained with {}, the plan of this results directory (suite.json) says {}: a run directory made from another suite file or with other flags (a stale machine's?) was merged here; judge it where it was made",
                value_at(&config, &field),
                value_at(&e.config, &field)
            )
        ));
    }
    Ok(())
}
