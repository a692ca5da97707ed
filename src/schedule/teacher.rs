//! A student and its teacher at the moment it is to train: a teacher that
//! is a run of the suite must be finished, and its checkpoint hash (from
//! its record) is bound into the student's config before the student's
//! directory is checked and claimed, so a student trained on another
//! teacher is never taken for this one and a resume with a changed teacher
//! is refused (see `results::check_run_dir`). A teacher from outside the
//! suite was bound when the suite was read.
use crate::suite::RunConfig;
use crate::train::record::{Record, MODEL_FILE, RECORD_FILE};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// A run ready to train: its config with the teacher bound, and the
/// teacher's model file (None without a teacher).
pub struct Bound {
    pub cfg: RunConfig,
    pub teacher: Option<PathBuf>,
}

pub enum Binding {
    Ready(Box<Bound>),
    /// The teacher run (its id) has no record yet.
    Waiting(String),
}

/// Binds `cfg`'s teacher from the results directory `dir` of its suite.
pub fn bind(dir: &Path, cfg: &RunConfig) -> Result<Binding> {
    let Some(t) = &cfg.teacher else {
        return Ok(Binding::Ready(Box::new(Bound {
            cfg: cfg.clone(),
            teacher: None,
        })));
    };
    let Some(run) = &t.run else {
        return Ok(Binding::Ready(Box::new(Bound {
            cfg: cfg.clone(),
            teacher: t.file.clone(),
        })));
    };
    let rec = dir.join(run).join(RECORD_FILE);
    if !rec.exists() {
        return Ok(Binding::Waiting(run.clone()));
    }
    let r = Record::load(&rec)?;
    let mut cfg = cfg.clone();
    if let Some(t) = cfg.teacher.as_mut() {
        t.checkpoint_sha256 = Some(r.checkpoint_sha256);
    }
    Ok(Binding::Ready(Box::new(Bound {
        cfg,
        teacher: Some(dir.join(run).join(MODEL_FILE)),
    })))
}
