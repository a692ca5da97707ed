//! Datasets: where the pixels come from, their fingerprint, and how a batch
//! of distorted views is made from them.
//!
//! Every dataset implements [`Dataset`]; the training loop sees nothing else.
//! `small` holds 32x32 datasets fully in memory as u8 (synthetic, CIFAR) and
//! `device_batch` builds their batches on the training device; `cifar/`
//! reads the official CIFAR distributions, `imagenet/` an ImageFolder tree,
//! the official archives or a pack; `pixels` normalises u8 views on the device.
//! The ChaCha streams (`stream`) and the distortions (`augment`) live here,
//! not in train/: every view a dataset makes is drawn from them (crops, flips,
//! the synthetic set's pixels), so the data layer needs them and the trainer
//! only asks a dataset for a view of (seed, epoch, index, view).
//!
//! Uses: util.
pub mod augment;
pub mod cifar;
pub mod device_batch;
pub mod fingerprint;
pub mod holdout;
pub mod imagenet;
pub mod partner;
pub mod pixels;
pub mod small;
pub mod stream;
pub mod synthetic;

use crate::data::augment::Distortion;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// What a record says about its dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// `synthetic`, `cifar10`, `cifar100`, `imagenet`.
    pub name: String,
    /// SHA-256 (hex) of the dataset as the README defines it per format.
    pub fingerprint: String,
    pub classes: usize,
    pub train_len: usize,
    pub test_len: usize,
    /// Side of the square network input.
    pub input_size: usize,
    /// Where the data was read from (`built-in` for synthetic data).
    pub source: String,
    /// Samples skipped while reading (e.g. corrupt JPEGs); 0 for CIFAR.
    #[serde(default)]
    pub skipped: usize,
}

/// The interface between a dataset and the training loop. Batches are f32
/// NCHW tensors on the CPU, normalised; labels are i64.
pub trait Dataset: Send + Sync {
    fn info(&self) -> &DatasetInfo;

    /// One distorted view of the training images `images`, the distortion
    /// of row `b` drawn at the stream address of sample `at[b]` for (seed,
    /// epoch, view): a pure function of those arguments. `at` is the step's
    /// own samples; a view may show other images than its samples (a CS-KD
    /// partner is a sample of the same class, distorted by the draw of the
    /// anchor it belongs to, so two anchors that share a partner still see
    /// two independent distortions of it).
    fn train_views(
        &self,
        images: &[usize],
        at: &[usize],
        seed: u64,
        epoch: u64,
        view: u8,
        distortion: Distortion,
    ) -> Result<Tensor>;

    /// One distorted view of the training samples `indices` for (seed,
    /// epoch, view), each drawn at its own address.
    fn train_batch(
        &self,
        indices: &[usize],
        seed: u64,
        epoch: u64,
        view: u8,
        distortion: Distortion,
    ) -> Result<Tensor> {
        self.train_views(indices, indices, seed, epoch, view, distortion)
    }

    /// Labels of the training samples `indices`.
    fn train_labels(&self, indices: &[usize]) -> Tensor;

    /// Test samples `start..start+len`, evaluation transform only.
    fn test_batch(&self, start: usize, len: usize) -> Result<(Tensor, Tensor)>;

    /// Training samples `indices` with the evaluation transform (what a
    /// held-out validation split is evaluated on), and their labels.
    fn train_eval_batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)>;

    /// The fingerprint of the training samples `indices` (ascending), as
    /// the dataset's own fingerprint is defined per format, restricted to
    /// them (see [`holdout`]).
    fn train_fingerprint(&self, indices: &[usize]) -> Result<String>;

    /// The training split uploaded to `device`, for datasets whose views can
    /// be built there ([`device_batch`]); `None` when only the host path
    /// exists (the default).
    fn device_images(&self, _device: tch::Device) -> Result<Option<device_batch::DeviceImages>> {
        Ok(None)
    }

    /// For datasets decoded on the host whose views can be handed to the
    /// device as u8 pixels and normalised there ([`pixels`]); `None` when
    /// only f32 host batches exist (the default).
    fn pixel_views(&self) -> Option<&dyn pixels::PixelViews> {
        None
    }
}

/// One view of a step's samples: the images it shows and the samples at
/// whose stream addresses their distortions are drawn (see
/// [`Dataset::train_views`]).
#[derive(Debug, Clone, Copy)]
pub struct ViewReq<'a> {
    pub images: &'a [usize],
    pub at: &'a [usize],
    pub view: u8,
    pub distortion: Distortion,
}

/// A resolved dataset choice, as stored in every run's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum DatasetSpec {
    Synthetic(synthetic::SyntheticSpec),
    Cifar10 { path: String },
    Cifar100 { path: String },
    Imagenet { path: String },
}

impl DatasetSpec {
    pub fn name(&self) -> &'static str {
        match self {
            DatasetSpec::Synthetic(_) => "synthetic",
            DatasetSpec::Cifar10 { .. } => "cifar10",
            DatasetSpec::Cifar100 { .. } => "cifar100",
            DatasetSpec::Imagenet { .. } => "imagenet",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DatasetSpec::Synthetic(s) => format!(
                "synthetic ({} classes, {} train / {} test, seed {})",
                s.classes, s.train, s.test, s.seed
            ),
            DatasetSpec::Cifar10 { path }
            | DatasetSpec::Cifar100 { path }
            | DatasetSpec::Imagenet { path } => {
                format!("{} at {path}", self.name())
            }
        }
    }
}

/// Loads (or generates) a dataset. Errors name the file and what was wrong.
pub fn open(spec: &DatasetSpec) -> Result<std::sync::Arc<dyn Dataset>> {
    match spec {
        DatasetSpec::Synthetic(s) => Ok(std::sync::Arc::new(synthetic::generate(s))),
        DatasetSpec::Cifar10 { path } => open_cifar(path, cifar::Variant::Cifar10),
        DatasetSpec::Cifar100 { path } => open_cifar(path, cifar::Variant::Cifar100),
        DatasetSpec::Imagenet { path } => Ok(std::sync::Arc::new(imagenet::Imagenet::open(
            std::path::Path::new(path),
            imagenet::Transform::default(),
        )?)),
    }
}

fn open_cifar(path: &str, v: cifar::Variant) -> Result<std::sync::Arc<dyn Dataset>> {
    let c = cifar::load(
        std::path::Path::new(path),
        Some(v),
        cifar::LoadOptions::default(),
    )?;
    Ok(std::sync::Arc::new(c.into_dataset()))
}
