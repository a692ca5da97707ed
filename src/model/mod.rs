//! Network definitions, the architecture registry, and a model's tensors
//! as files: the checkpoint hash, safetensors I/O (`checkpoint`) and PyTorch
//! state dicts (`export`).
//!
//! Every network returns `(logits, features)`: `features` are the pooled
//! penultimate activations (the input of the final fc layer, the MMD input of
//! docs/method.md §2). Variable names follow PyTorch module naming (`conv1`,
//! `bn1`, `layer1.0.conv1`, ..., `fc`), so checkpoints read like state dicts.
//!
//! Uses: util.
pub mod checkpoint;
pub mod densenet;
pub mod export;
pub mod heads;
pub mod imagenet;
pub mod layers;
pub mod resnet;
pub mod resnet_cifar;
pub mod wrn;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// A network as the training loop sees it.
pub trait Network: Send {
    /// `(logits [N, classes], features [N, D])`.
    fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor);

    /// The output channels of every stage, shallow first, for a network of
    /// stages that each halve the spatial size (the ResNets): what
    /// auxiliary heads ([`heads`]) attach to. `None`: no such stages.
    fn stage_channels(&self) -> Option<Vec<i64>> {
        None
    }

    /// [`Network::forward`], keeping the output of every stage before the
    /// last (the same operations: the logits and features are those of
    /// `forward`). `None` where [`Network::stage_channels`] is.
    fn forward_stages(&self, _xs: &Tensor, _train: bool) -> Option<Staged> {
        None
    }
}

/// A forward that kept the stage outputs.
pub struct Staged {
    /// The outputs of the stages before the last, shallow first.
    pub stages: Vec<Tensor>,
    pub logits: Tensor,
    pub features: Tensor,
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

/// A fixed-name architecture: its input kind, description and constructor.
struct Fixed {
    name: &'static str,
    input: &'static str,
    description: &'static str,
    build: fn(&nn::Path, i64) -> Box<dyn Network>,
}

/// The registered fixed names, in table order. They take precedence over the
/// `resnet<6n+2>` and `wrn<d>_<k>` families (`resnet50` is the bottleneck
/// ResNet-50, not an option-A ResNet of depth 50 = 6 * 8 + 2).
const FIXED: &[Fixed] = &[
    Fixed {
        name: "resnet18",
        input: "cifar",
        description: "CIFAR ResNet-18 (kuangliu/pytorch-cifar: 3x3 stem, basic blocks [2,2,2,2], 1x1-conv+BN shortcuts)",
        build: |p, c| Box::new(resnet::ResNet::cifar18(p, c)),
    },
    Fixed {
        name: "resnet50",
        input: "cifar",
        description: "CIFAR ResNet-50 (kuangliu/pytorch-cifar: 3x3 stem, bottleneck blocks [3,4,6,3], 1x1-conv+BN shortcuts)",
        build: |p, c| Box::new(resnet::ResNet::cifar50(p, c)),
    },
    Fixed {
        name: "preact_resnet18",
        input: "cifar",
        description: "pre-activation ResNet-18 (Self-KD-Lib CIFAR_ResNet18: conv-BN-ReLU stem, conv-only shortcuts)",
        build: |p, c| Box::new(resnet::ResNet::preact18(p, c)),
    },
    Fixed {
        name: "densenet_bc100",
        input: "cifar",
        description: "DenseNet-BC-100, growth 12, compression 0.5 (Huang et al. 2017)",
        build: |p, c| Box::new(densenet::DenseNetBc::new(p, 100, 12, c)),
    },
    Fixed {
        name: "imagenet_resnet18",
        input: "imagenet",
        description: "torchvision resnet18",
        build: |p, c| Box::new(imagenet::resnet18(p, c)),
    },
    Fixed {
        name: "imagenet_resnet50",
        input: "imagenet",
        description: "torchvision resnet50",
        build: |p, c| Box::new(imagenet::resnet50(p, c)),
    },
    Fixed {
        name: "alexnet",
        input: "imagenet",
        description: "torchvision alexnet (dropout 0.5)",
        build: |p, c| Box::new(imagenet::AlexNet::new(p, c)),
    },
];

fn fixed(name: &str) -> Option<&'static Fixed> {
    FIXED.iter().find(|f| f.name == name)
}

/// Resolves a name to its registry entry, or explains what exists.
pub fn lookup(name: &str) -> Result<ArchInfo> {
    if let Some(f) = fixed(name) {
        return Ok(ArchInfo {
            name: name.to_string(),
            input: f.input,
            description: f.description.to_string(),
            takes_width: false,
        });
    }
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
    if let Some((depth, k)) = wrn::parse(name) {
        return Ok(ArchInfo {
            name: name.to_string(),
            input: "cifar",
            description: format!(
                "Wide ResNet WRN-{depth}-{k} ({} pre-activation blocks per stage, dropout 0)",
                (depth - 4) / 6
            ),
            takes_width: false,
        });
    }
    bail!(
        "unknown architecture `{name}`: expected one of {}",
        known_names().join(", ")
    )
}

/// Names users can write (the CIFAR ResNet family accepts any depth 6n+2,
/// Wide ResNets any depth 6n+4 and widening factor k).
pub fn known_names() -> Vec<String> {
    let mut v = vec!["resnet8, resnet14, resnet20, resnet32, resnet44, resnet56, resnet110 (any resnet<6n+2> but resnet50)".to_string()];
    v.extend(
        FIXED
            .iter()
            .filter(|f| f.input == "cifar")
            .map(|f| f.name.to_string()),
    );
    v.push("wrn16_4, wrn28_10 (any wrn<6n+4>_<k>)".into());
    v.extend(
        FIXED
            .iter()
            .filter(|f| f.input == "imagenet")
            .map(|f| f.name.to_string()),
    );
    v
}

/// The rule for `width`: only the CIFAR ResNet-(6n+2) family takes one, a
/// multiple of 4 (option-A shortcuts pad channels by width / 4 per side).
pub fn check_width(arch: &ArchSpec, info: &ArchInfo) -> std::result::Result<(), String> {
    match arch.width {
        Some(_) if !info.takes_width => Err(format!(
            "`{}` has no width parameter (only the CIFAR ResNet-(6n+2) family takes one)",
            arch.name
        )),
        Some(w) if w < 4 || w % 4 != 0 => {
            Err(format!("expected a multiple of 4, at least 4, got {w}"))
        }
        _ => Ok(()),
    }
}

/// Builds `arch` under `root` for `classes` outputs.
pub fn build(arch: &ArchSpec, root: &nn::Path, classes: i64) -> Result<Box<dyn Network>> {
    let info = lookup(&arch.name)?;
    if let Err(e) = check_width(arch, &info) {
        bail!("width of `{}`: {e}", arch.name);
    }
    if let Some(f) = fixed(&arch.name) {
        return Ok((f.build)(root, classes));
    }
    if let Some(depth) = resnet_cifar::parse_depth(&arch.name) {
        let width = arch.width.unwrap_or(16);
        return Ok(Box::new(resnet_cifar::ResNetCifar::new(
            root, depth, width, classes,
        )));
    }
    if let Some((depth, k)) = wrn::parse(&arch.name) {
        return Ok(Box::new(wrn::WideResNet::new(root, depth, k, classes)));
    }
    unreachable!("lookup accepted `{}`", arch.name)
}

/// `arch` for `classes` outputs in a var store of its own (on the CPU),
/// with the weights of `tensors` (a model file's, `file` naming it in
/// errors): every variable present with its shape, nothing left over but
/// BN counters and the auxiliary heads' tensors (`heads.*`, which belong
/// to no network).
pub fn build_loaded(
    arch: &ArchSpec,
    classes: i64,
    tensors: &[(String, Tensor)],
    file: &std::path::Path,
) -> Result<(nn::VarStore, Box<dyn Network>)> {
    let plain: Vec<(String, Tensor)> = tensors
        .iter()
        .filter(|(n, _)| !n.starts_with(heads::PREFIX))
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    let mut vs = nn::VarStore::new(tch::Device::Cpu);
    let net = tch::no_grad(|| build(arch, &vs.root(), classes))?;
    checkpoint::load_into(&mut vs, &plain, file)?;
    Ok((vs, net))
}

/// Whether `name` is a network of stages that auxiliary heads attach to
/// (the ResNets: [`Network::stage_channels`] is `Some` for exactly these).
pub fn has_stages(name: &str) -> bool {
    matches!(
        name,
        "resnet18" | "resnet50" | "preact_resnet18" | "imagenet_resnet18" | "imagenet_resnet50"
    ) || (fixed(name).is_none() && resnet_cifar::parse_depth(name).is_some())
}

/// The architectures `ddgsd-bench models` lists: the paper's (docs/method.md §4)
/// and the third-party presets', in table order.
pub const LISTED: [&str; 13] = [
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet110",
    "resnet18",
    "resnet50",
    "preact_resnet18",
    "wrn16_4",
    "wrn28_10",
    "densenet_bc100",
    "imagenet_resnet18",
    "imagenet_resnet50",
    "alexnet",
];

/// Trainable parameters of `name` built for `classes` outputs (on the CPU,
/// with a throw-away var store).
pub fn count_parameters(name: &str, classes: i64) -> Result<i64> {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    tch::no_grad(|| {
        build(
            &ArchSpec {
                name: name.to_string(),
                width: None,
            },
            &vs.root(),
            classes,
        )
    })?;
    Ok(parameter_count(&vs))
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The `models` table: every listed architecture with its input kind and
/// parameter count for `classes` outputs (default 10 for CIFAR networks,
/// 1000 for ImageNet ones), aligned in columns.
pub fn registry_table(classes: Option<i64>) -> Result<String> {
    if let Some(c) = classes {
        if c < 1 {
            bail!("--classes {c}: expected at least 1");
        }
    }
    let mut rows = vec![[
        "architecture".to_string(),
        "input".into(),
        "classes".into(),
        "parameters".into(),
        "description".into(),
    ]];
    for name in LISTED {
        let info = lookup(name)?;
        let c = classes.unwrap_or(if info.input == "imagenet" { 1000 } else { 10 });
        rows.push([
            name.to_string(),
            info.input.to_string(),
            c.to_string(),
            thousands(count_parameters(name, c)?),
            info.description,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (j, r) in rows.iter().enumerate() {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        out.push_str(line.trim_end());
        out.push('\n');
        if j == 0 {
            let total: usize = widths[..4].iter().sum::<usize>() + 8 + "description".len();
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out.push_str("Also accepted: resnet<6n+2> (option-A CIFAR ResNets, with `width`; not resnet50) and wrn<6n+4>_<k>.\n");
    Ok(out)
}

/// Number of trainable parameters in a var store.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_stages_says_which_networks_return_stages() {
        for name in LISTED.iter().chain(&["resnet8"]) {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let spec = ArchSpec {
                name: name.to_string(),
                width: None,
            };
            let net = tch::no_grad(|| build(&spec, &vs.root(), 10)).unwrap();
            assert_eq!(has_stages(name), net.stage_channels().is_some(), "{name}");
        }
    }
}
