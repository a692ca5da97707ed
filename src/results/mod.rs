//! Results directories: `<out>/<suite>/suite.json` names the suite and the
//! order of its table; each run lives in `<out>/<suite>/<run id>/` with its
//! `config.json`, `record.json`, `model.safetensors` and `checkpoint/`.
//! Everything about a run is inside its own directory, so directories made
//! by different workers merge by copying.
//!
//! `run_dir` checks a run directory against the config about to run;
//! `load` reads a results directory back for the gate and the reports.
//!
//! Uses: train, suite, util.
pub mod load;
pub mod run_dir;

pub use load::{load, Loaded};
pub use run_dir::{check_run_dir, claim_run_dir, first_difference};

use crate::suite::ResolvedSuite;
use crate::util::atomic;
use crate::util::error::InputError;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SUITE_FILE: &str = "suite.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteMeta {
    pub suite: String,
    pub suite_file: String,
    pub expected_file: String,
    pub archs: Vec<String>,
    pub arms: Vec<String>,
    pub seeds: Vec<u64>,
}

impl SuiteMeta {
    pub fn of(s: &ResolvedSuite) -> Self {
        SuiteMeta {
            suite: s.name.clone(),
            suite_file: s.file.display().to_string(),
            expected_file: s.expected.display().to_string(),
            archs: s.archs.iter().map(|a| a.id()).collect(),
            arms: s.arms.iter().map(|a| a.name.clone()).collect(),
            seeds: s.seeds.clone(),
        }
    }
}

/// Creates (or re-opens) the results directory of a suite under `out`.
/// A directory that belongs to another suite is refused.
/// Read-only: an existing results directory must belong to this suite.
pub fn check_suite_dir(out: &Path, suite: &ResolvedSuite) -> Result<()> {
    let meta_path = out.join(&suite.name).join(SUITE_FILE);
    if meta_path.exists() {
        let old = read_meta(&meta_path)?;
        if old.suite != suite.name {
            bail!(InputError::new(
                &meta_path,
                Some("suite"),
                format!("results of suite `{}`, not `{}`", old.suite, suite.name)
            ));
        }
    }
    Ok(())
}

pub fn prepare(out: &Path, suite: &ResolvedSuite) -> Result<PathBuf> {
    check_suite_dir(out, suite)?;
    let dir = out.join(&suite.name);
    std::fs::create_dir_all(&dir).map_err(|e| {
        InputError::new(
            &dir,
            None,
            format!("cannot create the results directory: {e}"),
        )
    })?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"").map_err(|e| {
        InputError::new(
            &dir,
            None,
            format!("results directory is not writable: {e}"),
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    atomic::write_json(&dir.join(SUITE_FILE), &SuiteMeta::of(suite))?;
    Ok(dir)
}

pub(crate) fn read_meta(path: &Path) -> Result<SuiteMeta> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(path, None, format!("cannot read: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| InputError::new(path, None, format!("not a suite.json: {e}")).into())
}
