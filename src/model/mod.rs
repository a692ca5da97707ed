//! Network definitions and the architecture registry.
//!
//! Every network returns `(logits, features)`: `features` are the pooled
//! penultimate activations (the input of the final fc layer, the MMD input of
//! method.md §2). Variable names follow PyTorch module naming (`conv1`,
//! `bn1`, `layer1.0.conv1`, ..., `fc`), so checkpoints read like state dicts.
pub mod layers;
pub mod resnet_cifar;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// A network as the training loop sees it.
pub trait Network: Send {
    /// `(logits [N, classes], features [N, D])`.
    fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor);
}

/// An architecture as a suite names it: a registered name and an optional
/// width (first-stage channels, for the CIFAR ResNet family).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
}

impl ArchSpec {
    /// The id used in run ids and tables: `resnet20`, or `resnet8w8` when a
    /// width is given.
    pub fn id(&self) -> String {
        match self.width {
            Some(w) => format!("{}w{}", self.name, w),
            None => self.name.clone(),
        }
    }
}

/// What the registry knows about an architecture name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchInfo {
    pub name: String,
    /// `cifar` (32x32 inputs) or `imagenet` (224x224).
    pub input: &'static str,
    pub description: String,
    pub takes_width: bool,
}

/// Resolves a name to its registry entry, or explains what exists.
pub fn lookup(name: &str) -> Result<ArchInfo> {
    if let Some(depth) = resnet_cifar::parse_depth(name) {
        return Ok(ArchInfo {
            name: name.to_string(),
            input: "cifar",
            description: format!(
                "CIFAR ResNet-{depth} (He et al. 2016, option-A shortcuts, {} blocks per stage)",
                (depth - 2) / 6
            ),
            takes_width: true,
        });
    }
    bail!("unknown architecture `{name}`: expected one of {}", known_names().join(", "))
}

/// Names users can write (the CIFAR ResNet family accepts any depth 6n+2).
pub fn known_names() -> Vec<String> {
    vec!["resnet8, resnet14, resnet20, resnet32, resnet44, resnet56, resnet110 (any resnet<6n+2>)".into()]
}

/// Builds `arch` under `root` for `classes` outputs.
pub fn build(arch: &ArchSpec, root: &nn::Path, classes: i64) -> Result<Box<dyn Network>> {
    let info = lookup(&arch.name)?;
    if arch.width.is_some() && !info.takes_width {
        bail!("architecture `{}` has no width parameter", arch.name);
    }
    if let Some(depth) = resnet_cifar::parse_depth(&arch.name) {
        let width = arch.width.unwrap_or(16);
        if width < 4 || width % 4 != 0 {
            bail!("width {width} of `{}`: expected a multiple of 4, at least 4 (option-A shortcuts pad channels by width/4... per side)", arch.name);
        }
        return Ok(Box::new(resnet_cifar::ResNetCifar::new(root, depth, width, classes)));
    }
    unreachable!("lookup accepted `{}`", arch.name)
}

/// Number of trainable parameters in a var store.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}
