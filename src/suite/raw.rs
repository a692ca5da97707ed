//! A suite file exactly as written: every field optional where a default
//! exists, unknown fields refused. See README "Suite files" for the schema.
use crate::model::ArchSpec;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSuite {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Expected file, relative to the suite file (default:
    /// `../expected/<name>.toml` from the suite's folder).
    #[serde(default)]
    pub expected: Option<String>,
    pub seeds: Vec<u64>,
    pub architectures: Vec<RawArch>,
    pub arms: Vec<String>,
    pub dataset: RawDataset,
    #[serde(default)]
    pub train: RawTrain,
    #[serde(default)]
    pub loss: RawLoss,
    /// Definitions of new arms and overrides of built-in ones, by name.
    #[serde(default, rename = "arm")]
    pub arm_defs: BTreeMap<String, RawArm>,
    #[serde(default)]
    pub runtime: RawRuntime,
}

/// `"resnet20"` or `{ name = "resnet8", width = 8 }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawArch {
    Name(String),
    Spec(ArchSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataset {
    pub name: String,
    /// Archive or folder (cifar10, cifar100, imagenet).
    pub path: Option<String>,
    // synthetic only
    pub classes: Option<usize>,
    pub train: Option<usize>,
    pub test: Option<usize>,
    /// The synthetic set's generator seed; for every dataset also the seed
    /// that chooses the holdout (real datasets: only with `holdout`).
    pub seed: Option<u64>,
    pub noise: Option<f64>,
    /// Training samples held out as a validation split (default 0).
    pub holdout: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrain {
    pub epochs: Option<u32>,
    pub batch_size: Option<usize>,
    pub eval_batch_size: Option<usize>,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub nesterov: Option<bool>,
    pub weight_decay: Option<f64>,
    pub milestones: Option<Vec<u32>>,
    pub gamma: Option<f64>,
    pub warmup_epochs: Option<u32>,
    pub warmup_lr: Option<f64>,
    pub warmup_kind: Option<String>,
    /// Equal-width bins of the logged ECE (default 15).
    pub ece_bins: Option<usize>,
}

/// Loss constants; in `[loss]` they are defaults for every arm, in
/// `[arm.NAME]` they override for that arm.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoss {
    pub ce_weight: Option<f64>,
    pub lambda: Option<f64>,
    pub mu: Option<f64>,
    pub temperature: Option<f64>,
    pub t2_factor: Option<bool>,
    pub stop_gradient: Option<bool>,
    pub kl_reduction: Option<String>,
    pub mmd: Option<String>,
    pub rbf_bandwidths: Option<Vec<f64>>,
}

/// `[arm.NAME]`: the arm's own fields, and its method's constants.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawArm {
    /// The built-in arm this one starts from (default: its own name).
    pub base: Option<String>,
    /// `selfkdlib` or `youngerous` (two-view DDGSD arms).
    pub preset: Option<String>,
    /// `joint` (one forward over both views) or `separate`.
    pub forward: Option<String>,
    /// Distortion of each view: `crop_flip`, `flip_only`, `crop_only`, `none`.
    pub distortions: Option<Vec<String>>,
    /// baseline_2x: `steps` (twice the epochs) or `batch` (twice the batch
    /// and twice the epochs: same number of steps as a two-view arm).
    pub double: Option<String>,
    /// The teacher of a method that distils from a trained network
    /// (tf_kd_self): an arm of the suite (default `baseline`), or
    /// `{ dir = "..." }` / `{ model = "..." }`.
    pub teacher: Option<toml::Value>,
    /// Every other field: the method's constants (`[loss]` fields for the
    /// DDGSD arms, the method's own for the others), checked by the method
    /// so that an unknown one is refused by name.
    #[serde(flatten)]
    pub fields: toml::Table,
}

impl RawArm {
    /// The DDGSD arm's loss overrides; an unknown field is an error.
    pub fn loss(&self) -> Result<RawLoss, String> {
        RawLoss::deserialize(toml::Value::Table(self.fields.clone()))
            .map_err(|e| e.to_string().trim().replace('\n', " "))
    }
}

/// `teacher = "ARM"`, `{ dir = "runs/x" }` or `{ model = "m.safetensors" }`
/// (paths relative to the suite file).
#[derive(Debug, Clone, PartialEq)]
pub enum RawTeacher {
    Arm(String),
    Dir { dir: String },
    Model { model: String },
}

impl RawTeacher {
    /// The field as written, or what was expected instead.
    pub fn parse(v: &toml::Value) -> Result<RawTeacher, String> {
        let expected = "expected an arm of the suite (\"baseline\"), { dir = \"<finished run directory>\" } or { model = \"<model.safetensors>\" }";
        match v {
            toml::Value::String(s) => Ok(RawTeacher::Arm(s.clone())),
            toml::Value::Table(t) if t.len() == 1 => match t.iter().next() {
                Some((k, toml::Value::String(p))) if k == "dir" => {
                    Ok(RawTeacher::Dir { dir: p.clone() })
                }
                Some((k, toml::Value::String(p))) if k == "model" => {
                    Ok(RawTeacher::Model { model: p.clone() })
                }
                _ => Err(format!("{expected}, got {v}")),
            },
            _ => Err(format!("{expected}, got {v}")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    /// `auto` (CUDA when present), `cpu`, `cuda`, `cuda:N`.
    pub device: Option<String>,
    pub threads: Option<usize>,
    pub precision: Option<String>,
    pub deterministic: Option<bool>,
    pub checkpoint_every: Option<u32>,
    /// `host` | `device` (default).
    pub data: Option<String>,
    /// `contiguous` (default) | `channels_last`.
    pub memory_format: Option<String>,
    /// Batches built ahead (default 2).
    pub prefetch: Option<usize>,
    /// Loader threads (default 0: the cores `threads` leave free).
    pub loader_threads: Option<usize>,
    /// Ranks of one data-parallel run (default 1).
    pub world_size: Option<usize>,
    /// `auto` (default) | `gloo` | `nccl`.
    pub backend: Option<String>,
    /// Seconds (default 300).
    pub collective_timeout: Option<f64>,
    /// Synchronised batch norm: refused with the reason (see resolve).
    pub sync_bn: Option<bool>,
    /// TensorBoard event files in every run directory (default true).
    pub tensorboard: Option<bool>,
}
