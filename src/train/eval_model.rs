//! Evaluating weights outside training (the `eval` command): which weights
//! a run directory holds (the final model once `record.json` exists, else
//! its last checkpoint), building the network around a model file, and the
//! metrics of the test split and of a run's holdout ([`super::evaluate`],
//! the code the training loop evaluates with, so a run's final model gives
//! the numbers of its record's last epoch on the same platform).
use crate::data::Dataset;
use crate::model::{self, checkpoint, ArchSpec};
use crate::suite::RunConfig;
use crate::train::evaluate::{Evaluation, Evaluator};
use crate::train::exec::Exec;
use crate::train::record::{EpochLog, Record, MODEL_FILE, RECORD_FILE};
use crate::train::run_state::{self, CHECKPOINT_DIR};
use crate::train::CONFIG_FILE;
use crate::util::error::InputError;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The weights of a run directory and what its history says about them.
pub struct RunWeights {
    pub config: RunConfig,
    pub file: PathBuf,
    /// "final model" or "checkpoint after epoch E, step S".
    pub what: String,
    /// The history entry whose evaluation ran on exactly these weights (the
    /// last epoch of a finished run, or of a checkpoint at an epoch end).
    pub logged: Option<EpochLog>,
    pub record: Option<Record>,
}

/// Finds the weights of the run in `dir`.
pub fn run_weights(dir: &Path) -> Result<RunWeights> {
    let cfg_path = dir.join(CONFIG_FILE);
    if !cfg_path.is_file() {
        bail!(InputError::new(
            dir,
            None,
            format!("not a run directory (no {CONFIG_FILE}); expected <out>/<suite>/<run id>, or a .safetensors file with --arch and --data")
        ));
    }
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| InputError::new(&cfg_path, None, format!("cannot read: {e}")))?;
    let config: RunConfig = serde_json::from_str(&text)
        .map_err(|e| InputError::new(&cfg_path, None, format!("not a run config: {e}")))?;
    let rec_path = dir.join(RECORD_FILE);
    if rec_path.exists() {
        let record = Record::load(&rec_path)?;
        return Ok(RunWeights {
            config,
            file: dir.join(MODEL_FILE),
            what: format!("final model (epoch {})", record.epochs),
            logged: record.history.last().cloned(),
            record: Some(record),
        });
    }
    let ck = dir.join(CHECKPOINT_DIR);
    let Some(st) = run_state::read_state(&ck)? else {
        bail!(InputError::new(
            dir,
            None,
            "no weights yet: the run has neither a record.json nor a checkpoint"
        ));
    };
    let file = ck.join(&st.model_file);
    let got = checkpoint::file_sha256(&file)?;
    if got != st.model_sha256 {
        bail!(InputError::new(
            &file,
            None,
            format!(
                "SHA-256 {got} does not match the {} recorded in the checkpoint state: corrupt checkpoint",
                st.model_sha256
            )
        ));
    }
    let at_epoch_end = st.step_in_epoch == 0;
    Ok(RunWeights {
        config,
        file,
        what: if at_epoch_end {
            format!("checkpoint after epoch {}", st.epoch)
        } else {
            format!(
                "checkpoint in epoch {}, after step {}",
                st.epoch + 1,
                st.step_in_epoch
            )
        },
        logged: if at_epoch_end {
            st.history.last().cloned()
        } else {
            None
        },
        record: None,
    })
}

/// How to evaluate: the network, its class count, execution and batching.
pub struct Setup<'a> {
    pub arch: &'a ArchSpec,
    pub classes: i64,
    pub exec: Exec,
    pub batch: usize,
    pub bins: usize,
}

/// The test split's evaluation of the weights in `file`, and the
/// holdout's (`holdout`: its training-sample ids) when given.
pub fn evaluate_file(
    file: &Path,
    setup: &Setup,
    data: &dyn Dataset,
    holdout: Option<&[usize]>,
) -> Result<(Evaluation, Option<Evaluation>)> {
    let classes = data.info().classes as i64;
    if setup.classes < classes {
        bail!(
            "--classes {}: the dataset has {classes} classes (labels up to {})",
            setup.classes,
            classes - 1
        );
    }
    // A BYOT checkpoint holds its heads beside the network: the network alone
    // is evaluated (its deepest head, the run's accuracy).
    let tensors = checkpoint::read_safetensors(file)?;
    let (mut vs, net) = model::build_loaded(setup.arch, setup.classes, &tensors, file)?;
    vs.set_device(setup.exec.device);
    setup.exec.prepare(&vs)?;
    let e = Evaluator {
        net: net.as_ref(),
        exec: &setup.exec,
        batch: setup.batch,
        bins: setup.bins,
        group: None,
        heads: None,
    };
    let test = e.run(data.info().test_len, &|s, l| data.test_batch(s, l))?;
    let val = match holdout {
        Some(ids) => Some(e.run(ids.len(), &|s, l| data.train_eval_batch(&ids[s..s + l]))?),
        None => None,
    };
    Ok((test, val))
}
