//! Results directories: `<out>/<suite>/suite.json` names the suite and the
//! order of its table; each run lives in `<out>/<suite>/<run id>/` with its
//! `config.json`, `record.json`, `model.safetensors` and `checkpoint/`.
//! Everything about a run is inside its own directory, so directories made
//! by different workers merge by copying.
use crate::atomic;
use crate::error::InputError;
use crate::record::{Record, RECORD_FILE};
use crate::suite::{ResolvedSuite, RunConfig};
use crate::train::CONFIG_FILE;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

fn read_meta(path: &Path) -> Result<SuiteMeta> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(path, None, format!("cannot read: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| InputError::new(path, None, format!("not a suite.json: {e}")).into())
}

/// The first JSON path where two values differ (`train.schedule.lr`).
pub fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => first_difference(u, v, &p),
                    _ => Some(p),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(path.to_string()),
    }
}

/// Records the config of a run about to start (after [`check_run_dir`]).
pub fn claim_run_dir(dir: &Path, cfg: &RunConfig) -> Result<()> {
    if dir.join(CONFIG_FILE).exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| InputError::new(dir, None, format!("cannot create: {e}")))?;
    atomic::write_json(&dir.join(CONFIG_FILE), cfg)
}

/// Read-only: compares a run directory's stored config (if any) with the
/// one about to run and names the first differing field.
pub fn check_run_dir(dir: &Path, cfg: &RunConfig) -> Result<()> {
    let path = dir.join(CONFIG_FILE);
    if path.exists() {
        let new = cfg.comparable();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| InputError::new(&path, None, format!("cannot read: {e}")))?;
        let old: Value = serde_json::from_str(&text)
            .map_err(|e| InputError::new(&path, None, format!("corrupt config: {e}")))?;
        let old = crate::suite::config::without_location(old);
        if let Some(field) = first_difference(&old, &new, "") {
            bail!(InputError::new(
                &path,
                Some(&field),
                format!(
                    "this results directory was made with `{}`, the suite now says `{}`; use another --out or remove {}",
                    old.pointer(&pointer(&field)).map(|v| v.to_string()).unwrap_or("(absent)".into()),
                    new.pointer(&pointer(&field)).map(|v| v.to_string()).unwrap_or("(absent)".into()),
                    dir.display()
                )
            ));
        }
    }
    Ok(())
}

fn pointer(field: &str) -> String {
    let mut p = String::new();
    for part in field.split('.') {
        if let Some((name, rest)) = part.split_once('[') {
            p.push('/');
            p.push_str(name);
            for idx in rest.split('[') {
                p.push('/');
                p.push_str(idx.trim_end_matches(']'));
            }
        } else {
            p.push('/');
            p.push_str(part);
        }
    }
    p
}

/// A results directory as read back: its suite meta, complete records, and
/// the run directories that have no record yet.
pub struct Loaded {
    pub dir: PathBuf,
    pub meta: SuiteMeta,
    pub records: Vec<Record>,
    pub incomplete: Vec<String>,
}

pub fn load(dir: &Path) -> Result<Loaded> {
    if !dir.is_dir() {
        bail!(InputError::new(dir, None, "no such results directory"));
    }
    let meta_path = dir.join(SUITE_FILE);
    if !meta_path.exists() {
        bail!(InputError::new(
            dir,
            None,
            format!("not a results directory (no {SUITE_FILE}); expected <out>/<suite>")
        ));
    }
    let meta = read_meta(&meta_path)?;
    let mut records = Vec::new();
    let mut incomplete = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let rec = e.path().join(RECORD_FILE);
        if rec.exists() {
            let r = Record::load(&rec)?;
            if r.suite != meta.suite {
                bail!(InputError::new(
                    &rec,
                    Some("suite"),
                    format!(
                        "record of suite `{}` inside the results of `{}`",
                        r.suite, meta.suite
                    )
                ));
            }
            records.push(r);
        } else if e.path().join(CONFIG_FILE).exists() {
            incomplete.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(Loaded {
        dir: dir.to_path_buf(),
        meta,
        records,
        incomplete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_first_differing_field() {
        let a = json!({"train": {"lr": 0.1, "milestones": [1, 2]}, "seed": 0});
        let b = json!({"train": {"lr": 0.2, "milestones": [1, 2]}, "seed": 0});
        assert_eq!(first_difference(&a, &b, "").as_deref(), Some("train.lr"));
        let c = json!({"train": {"lr": 0.1, "milestones": [1, 3]}, "seed": 0});
        assert_eq!(
            first_difference(&a, &c, "").as_deref(),
            Some("train.milestones[1]")
        );
        assert_eq!(first_difference(&a, &a, ""), None);
        assert_eq!(pointer("train.milestones[1]"), "/train/milestones/1");
    }
}
