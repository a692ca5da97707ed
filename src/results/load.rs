//! A results directory read back: its suite meta, the complete records and
//! the run directories that have none yet.
use super::{read_meta, SuiteMeta, SUITE_FILE};
use crate::train::record::{Record, RECORD_FILE};
use crate::train::CONFIG_FILE;
use crate::util::error::InputError;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

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
