//! The resumable position of a run and its checkpoint files, in
//! `<run>/checkpoint/`: `model-<tag>.safetensors` (weights and BN buffers),
//! `optim-<tag>.safetensors` (momentum buffers), `method-<tag>.safetensors`
//! (the method's own state, e.g. PS-KD's memory; only for methods that keep
//! one) and `state.json` (position, running sums, history, the files'
//! SHA-256). `state.json` is written
//! last, atomically: it is the commit point, and older files are removed
//! only after it is in place, so a kill at any moment leaves the previous
//! complete checkpoint.
use crate::method::Method;
use crate::model::checkpoint::{self, file_sha256, model_tensors};
use crate::optim::sgd::Sgd;
use crate::train::record::{EpochLog, SCHEMA};
use crate::util::atomic;
use crate::util::error::InputError;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn::VarStore, Device, Tensor};

pub const CHECKPOINT_DIR: &str = "checkpoint";
pub const STATE_FILE: &str = "state.json";

/// Running sums over the steps of the epoch in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accum {
    pub loss: f64,
    /// Each of the method's terms by name (written beside `loss`, as the
    /// DDGSD terms `ce`, `kl`, `mmd` always were).
    #[serde(flatten)]
    pub terms: BTreeMap<String, f64>,
    pub steps: u64,
    pub correct: u64,
    pub seen: u64,
    pub seconds: f64,
}

/// The resumable position of a run (checkpoint/state.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    pub schema: u32,
    pub run_id: String,
    pub config_sha256: String,
    pub dataset_fingerprint: String,
    /// Epoch in progress (0-based) and steps of it already done.
    pub epoch: u32,
    pub step_in_epoch: usize,
    pub global_step: u64,
    pub acc: Accum,
    pub history: Vec<EpochLog>,
    /// The test top-1 of the best epoch and that epoch: by validation top-1
    /// with a holdout (`best_val_top1` its value), else by test top-1.
    pub best_top1: f64,
    pub best_epoch: u32,
    #[serde(default)]
    pub best_val_top1: Option<f64>,
    pub images_trained: u64,
    pub train_seconds: f64,
    pub wall_seconds: f64,
    pub resumed: bool,
    pub model_file: String,
    pub model_sha256: String,
    pub optim_file: String,
    pub optim_sha256: String,
    /// The method's own state (PS-KD's memory), when it keeps any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method_file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method_sha256: String,
}

impl TrainState {
    /// The position of a run that has not started.
    pub fn fresh(run_id: &str, config_sha256: &str, dataset_fingerprint: &str) -> Self {
        TrainState {
            schema: SCHEMA,
            run_id: run_id.to_string(),
            config_sha256: config_sha256.to_string(),
            dataset_fingerprint: dataset_fingerprint.to_string(),
            epoch: 0,
            step_in_epoch: 0,
            global_step: 0,
            acc: Accum::default(),
            history: vec![],
            best_top1: f64::NEG_INFINITY,
            best_epoch: 0,
            best_val_top1: None,
            images_trained: 0,
            train_seconds: 0.0,
            wall_seconds: 0.0,
            resumed: false,
            model_file: String::new(),
            model_sha256: String::new(),
            optim_file: String::new(),
            optim_sha256: String::new(),
            method_file: String::new(),
            method_sha256: String::new(),
        }
    }
}

impl TrainState {
    /// Takes `log` as the best epoch if it beats the best so far: on the
    /// validation top-1 when it has one, else on the test top-1 (ties keep
    /// the earlier epoch).
    pub fn note_best(&mut self, log: &EpochLog) {
        let better = match log.val_top1 {
            Some(v) => self.best_val_top1.is_none_or(|b| v > b),
            None => log.test_top1 > self.best_top1,
        };
        if better {
            self.best_top1 = log.test_top1;
            self.best_epoch = log.epoch;
            self.best_val_top1 = log.val_top1;
        }
    }
}

/// The state of the checkpoint in `dir` (`None` when there is none),
/// without loading its tensors.
pub fn read_state(dir: &Path) -> Result<Option<TrainState>> {
    let state_path = dir.join(STATE_FILE);
    if !state_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&state_path)
        .map_err(|e| InputError::new(&state_path, None, format!("cannot read: {e}")))?;
    let st: TrainState = serde_json::from_str(&text).map_err(|e| {
        InputError::new(&state_path, None, format!("corrupt checkpoint state: {e}"))
    })?;
    Ok(Some(st))
}

/// Reads the checkpoint in `dir` into `vs`, `opt` and `method` and returns
/// its state, or `None` when there is none. A checkpoint of another run
/// config (`expect.config_sha256`) or dataset, or with a file whose hash
/// does not match, is refused.
pub fn load(
    dir: &Path,
    expect: &TrainState,
    vs: &mut VarStore,
    opt: &mut Sgd,
    method: &mut dyn Method,
    device: Device,
) -> Result<Option<TrainState>> {
    let state_path = dir.join(STATE_FILE);
    let Some(st) = read_state(dir)? else {
        return Ok(None);
    };
    if st.config_sha256 != expect.config_sha256 || st.run_id != expect.run_id {
        bail!(InputError::new(
            &state_path,
            Some("config_sha256"),
            "checkpoint of another run config; refusing to resume from it"
        ));
    }
    if st.dataset_fingerprint != expect.dataset_fingerprint {
        bail!(InputError::new(
            &state_path,
            Some("dataset_fingerprint"),
            format!(
                "checkpoint trained on dataset {}, this data is {}",
                st.dataset_fingerprint, expect.dataset_fingerprint
            )
        ));
    }
    let method_file = (!st.method_file.is_empty()).then_some((&st.method_file, &st.method_sha256));
    for (file, sha) in [
        (&st.model_file, &st.model_sha256),
        (&st.optim_file, &st.optim_sha256),
    ]
    .into_iter()
    .chain(method_file)
    {
        let p = dir.join(file);
        let got = file_sha256(&p)?;
        if &got != sha {
            bail!(InputError::new(
                &p,
                None,
                format!("SHA-256 {got} does not match the {sha} recorded in {STATE_FILE}: corrupt checkpoint")
            ));
        }
    }
    let model_path = dir.join(&st.model_file);
    let tensors = checkpoint::read_safetensors(&model_path)?;
    checkpoint::load_into(vs, &tensors, &model_path)?;
    let optim_path = dir.join(&st.optim_file);
    let optim: Vec<(String, Tensor)> = checkpoint::read_safetensors(&optim_path)?
        .into_iter()
        .map(|(n, t)| (n, t.to_device(device)))
        .collect();
    opt.load_state(&optim)
        .map_err(|e| InputError::new(&optim_path, None, e))?;
    let (method_path, method_state) = if st.method_file.is_empty() {
        (state_path.clone(), Vec::new())
    } else {
        let p = dir.join(&st.method_file);
        let t = checkpoint::read_safetensors(&p)?
            .into_iter()
            .map(|(n, t)| (n, t.to_device(device)))
            .collect();
        (p, t)
    };
    method
        .load_state(&method_state)
        .map_err(|e| InputError::new(&method_path, Some("method state"), e))?;
    remove_unreferenced(dir, &st);
    Ok(Some(st))
}

/// Removes the checkpoint files (`model-*`, `optim-*`, `method-*`
/// `.safetensors`) that `st` does not name: those of earlier checkpoints,
/// left when a worker was killed after committing a newer state.json but
/// before removing them.
fn remove_unreferenced(dir: &Path, st: &TrainState) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let keep = [&st.model_file, &st.optim_file, &st.method_file];
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = ["model-", "optim-", "method-"]
            .iter()
            .any(|p| name.starts_with(p))
            && name.ends_with(".safetensors");
        if ours && !keep.contains(&&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes weights, momentum, the method's state and position (see the
/// module comment).
pub fn save(
    dir: &Path,
    st: &mut TrainState,
    vs: &VarStore,
    opt: &Sgd,
    method: &dyn Method,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let tag = format!("e{:04}-s{:06}", st.epoch, st.step_in_epoch);
    let model_file = format!("model-{tag}.safetensors");
    let optim_file = format!("optim-{tag}.safetensors");
    checkpoint::write_safetensors(&dir.join(&model_file), &model_tensors(vs))?;
    let optim: Vec<(String, Tensor)> = opt
        .state()
        .into_iter()
        .map(|(n, t)| (n, t.to_device(Device::Cpu)))
        .collect();
    checkpoint::write_safetensors(&dir.join(&optim_file), &optim)?;
    let state: Vec<(String, Tensor)> = method
        .state()
        .into_iter()
        .map(|(n, t)| (n, t.to_device(Device::Cpu)))
        .collect();
    let method_file = if state.is_empty() {
        String::new()
    } else {
        let f = format!("method-{tag}.safetensors");
        checkpoint::write_safetensors(&dir.join(&f), &state)?;
        f
    };
    st.model_sha256 = file_sha256(&dir.join(&model_file))?;
    st.optim_sha256 = file_sha256(&dir.join(&optim_file))?;
    st.method_sha256 = if method_file.is_empty() {
        String::new()
    } else {
        file_sha256(&dir.join(&method_file))?
    };
    st.model_file = model_file;
    st.optim_file = optim_file;
    st.method_file = method_file;
    atomic::write_json(&dir.join(STATE_FILE), st)?;
    remove_unreferenced(dir, st);
    Ok(())
}
