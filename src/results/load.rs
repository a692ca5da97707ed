//! A results directory read back: its suite meta, the complete records,
//! the planned runs that have none yet, and every run directory checked
//! against the recorded plan.
use super::{plan, read_meta, SuiteMeta, SUITE_FILE};
use crate::train::record::{Record, RECORD_FILE};
use crate::train::CONFIG_FILE;
use crate::util::error::InputError;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// A results directory as read back.
pub struct Loaded {
    pub dir: PathBuf,
    pub meta: SuiteMeta,
    pub records: Vec<Record>,
    /// Run directories with a config but no record yet (started, unfinished).
    pub incomplete: Vec<String>,
    /// Planned runs without a run directory (never begun); empty when the
    /// plan is unknown (a suite.json of an earlier version).
    pub never_begun: Vec<String>,
}

impl Loaded {
    /// Whether suite.json records the plan (directories of earlier versions do not).
    pub fn plan_known(&self) -> bool {
        self.meta.plan.is_some()
    }

    /// Planned runs without a record: unfinished, then never begun.
    pub fn unfinished(&self) -> Vec<String> {
        self.incomplete
            .iter()
            .chain(&self.never_begun)
            .cloned()
            .collect()
    }

    /// How many runs the verdict is about: the plan's, or those found.
    pub fn planned(&self) -> usize {
        match &self.meta.plan {
            Some(p) => p.len(),
            None => self.records.len() + self.incomplete.len(),
        }
    }
}

fn read_config(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(path, None, format!("cannot read: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| InputError::new(path, None, format!("corrupt config: {e}")).into())
}

/// Every finished student was trained on the teacher whose record is in
/// this directory: its config's teacher hash is that record's checkpoint
/// hash (a student of another teacher, merged here, is refused).
fn check_teachers(dir: &Path, records: &[Record]) -> Result<()> {
    for r in records {
        let Some(t) = r.config.teacher.as_ref() else {
            continue;
        };
        let Some(run) = &t.run else { continue };
        let path = dir.join(&r.run_id).join(RECORD_FILE);
        let Some(teacher) = records.iter().find(|x| &x.run_id == run) else {
            bail!(InputError::new(
                &path,
                Some("config.teacher"),
                format!(
                    "run `{}` was trained on teacher `{run}`, which has no record in this results directory: a student without its teacher cannot be judged",
                    r.run_id
                )
            ));
        };
        if t.checkpoint_sha256.as_deref() != Some(teacher.checkpoint_sha256.as_str()) {
            bail!(InputError::new(
                &path,
                Some("config.teacher.checkpoint_sha256"),
                format!(
                    "run `{}` was trained on a teacher with checkpoint {}, but teacher run `{run}` here has checkpoint {}: it was trained on another teacher (a run directory copied from elsewhere?)",
                    r.run_id,
                    t.checkpoint_sha256.as_deref().unwrap_or("(none)"),
                    teacher.checkpoint_sha256
                )
            ));
        }
    }
    Ok(())
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
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| InputError::new(dir, None, format!("cannot read: {e}")))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let mut begun = Vec::new();
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let (rec, cfg) = (e.path().join(RECORD_FILE), e.path().join(CONFIG_FILE));
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
            if let Some(p) = &meta.plan {
                plan::check_run_against(&rec, &r.run_id, serde_json::to_value(&r.config)?, p)?;
            }
            begun.push(r.run_id.clone());
            records.push(r);
        } else if cfg.exists() {
            if let Some(p) = &meta.plan {
                plan::check_run_against(&cfg, &name, read_config(&cfg)?, p)?;
            }
            begun.push(name.clone());
            incomplete.push(name);
        }
    }
    check_teachers(dir, &records)?;
    if meta.plan.is_none() {
        eprintln!(
            "ddgsd-bench: note: {}/suite.json records no plan (an earlier version made it): the {} run directories found are judged, runs never begun cannot be listed; `ddgsd-bench run {} --out {}` records it (finished runs are kept)",
            dir.display(),
            begun.len(),
            meta.suite_file,
            dir.parent().map(|p| p.display().to_string()).unwrap_or_else(|| ".".into())
        );
    }
    let never_begun = meta
        .plan
        .iter()
        .flatten()
        .filter(|e| !begun.contains(&e.run_id))
        .map(|e| e.run_id.clone())
        .collect();
    Ok(Loaded {
        dir: dir.to_path_buf(),
        meta,
        records,
        incomplete,
        never_begun,
    })
}
