//! Results directories: `<out>/<suite>/suite.json` names the suite and the
//! order of its table; each run lives in `<out>/<suite>/<run id>/` with its
//! `config.json`, `record.json`, `model.safetensors` and `checkpoint/`.
//! Everything about a run is inside its own directory, so directories made
//! by different workers merge by copying.
//!
//! `run_dir` checks a run directory against the config about to run;
//! `plan` is the plan recorded in suite.json (every run id and its config),
//! which the gate judges; `load` reads a results directory back for the
//! gate and the reports, checking every run directory against the plan.
//!
//! Uses: train, suite, util.
pub mod load;
pub mod plan;
pub mod run_dir;

pub use load::{load, Loaded};
pub use plan::PlanEntry;
pub use run_dir::{check_run_dir, claim_run_dir, first_difference};

use crate::suite::{resolve::Overrides, ResolvedSuite};
use crate::util::atomic;
use crate::util::error::InputError;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SUITE_FILE: &str = "suite.json";

/// `suite.json`: which suite made the directory, with which flags, the
/// expected file that judges it and the plan. Paths are absolute, so every
/// command finds the same files from any working directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteMeta {
    pub suite: String,
    pub suite_file: String,
    pub expected_file: String,
    pub archs: Vec<String>,
    pub arms: Vec<String>,
    pub seeds: Vec<u64>,
    /// `--threads` / `--device` of the runs that made the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// `--ranks` (or the launcher's world size) of the runs that made the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranks: Option<usize>,
    /// Every planned run; absent in directories of earlier versions, whose
    /// gate judges the run directories it finds (see `load`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<PlanEntry>>,
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

impl SuiteMeta {
    /// The meta of `s` run with `overrides`, judged by `expected`.
    pub fn of(s: &ResolvedSuite, expected: &Path, overrides: &Overrides) -> Self {
        SuiteMeta {
            suite: s.name.clone(),
            suite_file: absolute(&s.file),
            expected_file: absolute(expected),
            archs: s.archs.iter().map(|a| a.id()).collect(),
            arms: s.arms.iter().map(|a| a.name.clone()).collect(),
            seeds: s.seeds.clone(),
            threads: overrides.threads,
            device: overrides.device.clone(),
            ranks: overrides.world_size,
            plan: Some(plan::plan_of(s)),
        }
    }

    /// The expected file, and whether it is a relative path of an earlier
    /// version's suite.json (then read from the current directory).
    pub fn expected_path(&self) -> (PathBuf, bool) {
        let p = PathBuf::from(&self.expected_file);
        let relative = p.is_relative();
        (p, relative)
    }

    /// The flags that make this plan, for the commands this tool prints.
    pub fn flags(&self) -> Vec<String> {
        let mut f = Vec::new();
        if let Some(t) = self.threads {
            f.extend(["--threads".to_string(), t.to_string()]);
        }
        if let Some(d) = &self.device {
            f.extend(["--device".to_string(), d.clone()]);
        }
        if let Some(n) = self.ranks {
            f.extend(["--ranks".to_string(), n.to_string()]);
        }
        f
    }
}

/// Read-only, before anything is trained: an existing results directory
/// must belong to this suite, each of its run directories must have been
/// made with the config about to run, and its recorded plan must agree
/// with the suite's (see `plan::check_suite_against`).
pub fn check_suite_dir(out: &Path, suite: &ResolvedSuite) -> Result<()> {
    let dir = out.join(&suite.name);
    let meta_path = dir.join(SUITE_FILE);
    let old = if meta_path.exists() {
        let old = read_meta(&meta_path)?;
        if old.suite != suite.name {
            bail!(InputError::new(
                &meta_path,
                Some("suite"),
                format!("results of suite `{}`, not `{}`", old.suite, suite.name)
            ));
        }
        Some(old)
    } else {
        None
    };
    for cfg in &suite.runs {
        check_run_dir(&dir.join(&cfg.run_id), cfg)?;
    }
    if let Some(plan) = old.as_ref().and_then(|m| m.plan.as_ref()) {
        plan::check_suite_against(&meta_path, plan, suite)?;
    }
    Ok(())
}

/// Creates (or re-opens) the results directory of a suite under `out` and
/// writes its suite.json: the plan, the flags, and the expected file
/// (`expected`, the one this run checks against; `None` keeps the one
/// recorded, or records the suite's). Removes temporary files that killed
/// writers of this host left in it.
pub fn prepare(
    out: &Path,
    suite: &ResolvedSuite,
    expected: Option<&Path>,
    overrides: &Overrides,
) -> Result<PathBuf> {
    check_suite_dir(out, suite)?;
    let dir = out.join(&suite.name);
    std::fs::create_dir_all(&dir).map_err(|e| {
        InputError::new(
            &dir,
            None,
            format!("cannot create the results directory: {e}"),
        )
    })?;
    atomic::check_target(&dir.join(SUITE_FILE), "--out").map_err(|e| {
        InputError::new(
            &dir,
            None,
            format!("results directory is not writable: {e:#}"),
        )
    })?;
    atomic::remove_leftovers(&dir, false);
    let meta_path = dir.join(SUITE_FILE);
    let recorded = if meta_path.exists() {
        Some(read_meta(&meta_path)?.expected_file)
    } else {
        None
    };
    let expected = match (expected, recorded) {
        (Some(e), _) => e.to_path_buf(),
        (None, Some(r)) if Path::new(&r).is_absolute() => PathBuf::from(r),
        (None, _) => suite.expected.clone(),
    };
    atomic::write_json(&meta_path, &SuiteMeta::of(suite, &expected, overrides))?;
    Ok(dir)
}

pub(crate) fn read_meta(path: &Path) -> Result<SuiteMeta> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(path, None, format!("cannot read: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| InputError::new(path, None, format!("not a suite.json: {e}")).into())
}
