//! `record.json`: everything about one finished run, in one file of its own
//! directory, so that results directories merge by copying.
use crate::data::holdout::HoldoutRecord;
use crate::platform::EnvInfo;
use crate::suite::RunConfig;
use crate::util::error::InputError;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const RECORD_FILE: &str = "record.json";
pub const MODEL_FILE: &str = crate::model::checkpoint::MODEL_FILE_NAME;
/// A BYOT run's auxiliary heads, beside the plain network's file.
pub const HEADS_FILE: &str = crate::model::heads::HEADS_FILE;
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub name: String,
    pub fingerprint: String,
    pub train_len: usize,
    pub test_len: usize,
    #[serde(default)]
    pub skipped: usize,
    /// The validation split taken out of the training split (`[dataset]
    /// holdout`); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Top-1 / top-5 accuracy (%) on the test split after the last epoch.
    pub top1_final: f64,
    pub top5_final: f64,
    /// The test top-1 of the best epoch, and that epoch (1-based): the
    /// epoch of the best validation top-1 when the run has a holdout
    /// (`best_on = "validation"`), else of the best test top-1 (`"test"`).
    pub top1_best: f64,
    pub best_epoch: u32,
    /// How the best epoch was chosen (records written before the field:
    /// `test`).
    #[serde(default)]
    pub best_on: BestOn,
    /// Test NLL (nats) and ECE (%) after the last epoch (see
    /// `train::evaluate`); absent in records written before they existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nll_final: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ece_final: Option<f64>,
    /// Validation top-1 after the last epoch and at the best epoch (runs
    /// with a holdout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_top1_final: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_top1_best: Option<f64>,
    /// Which classifier the accuracies above are of, for a network with
    /// auxiliary heads (BYOT: `"deepest head"`, the network's own `fc`;
    /// absent for a plain network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_of: Option<String>,
    /// Test top-1 (%) of every auxiliary head after the last epoch,
    /// shallow first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads_top1_final: Option<Vec<f64>>,
}

/// What selects the best epoch of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestOn {
    /// The best test top-1 (no holdout): an optimistic number.
    #[default]
    Test,
    /// The best validation top-1 (a holdout); the metric is the test
    /// top-1 at that epoch.
    Validation,
}

/// One epoch of training: mean loss terms over its steps and the test
/// accuracy after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: u32,
    pub lr: f64,
    /// The mean total loss.
    pub loss: f64,
    /// The mean of each of the method's terms, by name, written beside
    /// `loss` (the DDGSD family's are `ce`, `kl`, `mmd`; see
    /// `method::plan::StepPlan::terms`).
    #[serde(flatten)]
    pub terms: BTreeMap<String, f64>,
    pub train_top1: f64,
    pub test_top1: f64,
    pub test_top5: f64,
    pub seconds: f64,
    /// Data-parallel runs: the checkpoint hash of the weights after this
    /// epoch, checked to be the same on every rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// Test NLL (nats) and ECE (%); absent in records written before
    /// they were logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_nll: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_ece: Option<f64>,
    /// The held-out validation split's metrics (runs with a holdout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_top1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_top5: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_nll: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_ece: Option<f64>,
    /// Test top-1 (%) of every auxiliary head, shallow first (BYOT); the
    /// `test_*` fields above are the deepest head's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads_test_top1: Option<Vec<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub wall_seconds: f64,
    /// Training images (each view counted) per second of training time.
    pub train_images_per_second: f64,
    /// True when the run was resumed from a checkpoint at least once
    /// (wall_seconds then adds up the segments).
    pub resumed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema: u32,
    pub run_id: String,
    pub suite: String,
    pub arch: String,
    pub arm: String,
    pub seed: u64,
    pub dataset: DatasetRef,
    pub epochs: u32,
    pub metrics: Metrics,
    pub checkpoint_sha256: String,
    /// The platform fingerprint (see `platform::EnvInfo::platform`).
    pub platform: String,
    pub config: RunConfig,
    pub env: EnvInfo,
    pub timing: Timing,
    pub history: Vec<EpochLog>,
}

impl Record {
    /// Reads and checks a record: parseable, current schema, and its run id
    /// matching its directory.
    pub fn load(path: &Path) -> Result<Record> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(path, None, format!("cannot read: {e}")))?;
        let r: Record = serde_json::from_str(&text)
            .map_err(|e| InputError::new(path, None, format!("not a valid record: {e}")))?;
        if r.schema != SCHEMA {
            bail!(InputError::new(
                path,
                Some("schema"),
                format!("expected {SCHEMA}, got {}", r.schema)
            ));
        }
        if let Some(dir) = path
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
        {
            if dir != r.run_id {
                bail!(InputError::new(
                    path,
                    Some("run_id"),
                    format!("`{}` does not match its directory `{dir}`", r.run_id)
                ));
            }
        }
        Ok(r)
    }
}
