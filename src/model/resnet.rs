//! Four-stage ResNets: the CIFAR ResNet-18 / ResNet-50 of kuangliu/pytorch-cifar,
//! the pre-activation ResNet-18 of Self-KD-Lib, and (through
//! [`super::imagenet`]) torchvision's ImageNet ResNet-18 / ResNet-50.
//!
//! The blocks, their names and their forward passes:
//! - basic (`conv1`, `bn1`, `conv2`, `bn2`): conv-BN-ReLU, conv-BN, + shortcut, ReLU;
//! - bottleneck (`conv1`..`conv3`, `bn1`..`bn3`; expansion 4, the stride on the
//!   3x3 conv as in torchvision's "v1.5" and kuangliu): 1x1, 3x3, 1x1;
//! - pre-activation (`bn1`, `conv1`, `bn2`, `conv2`): BN-ReLU, then the
//!   projection shortcut (if any) takes the *activated* input, conv, BN-ReLU,
//!   conv, + shortcut, no ReLU after the sum.
//!
//! A block has a projection shortcut when its stride is not 1 or its input
//! width differs from its output width: a strided 1x1 conv followed by a BN
//! (`shortcut.0`, `shortcut.1` for kuangliu; `downsample.0`, `downsample.1`
//! for torchvision), or a conv alone (`shortcut.0`, Self-KD-Lib's
//! pre-activation block).
//!
//! CIFAR stem: 3x3 conv with 64 channels, BN, ReLU, no max-pool (Self-KD-Lib's
//! pre-activation net keeps this BN-ReLU stem; kuangliu's PreActResNet18 has a
//! bare conv stem instead). Stages of widths 64/128/256/512, strides 1/2/2/2,
//! then a mean over H and W and `fc`.
//!
//! Initialisation follows the reference code: kuangliu and Self-KD-Lib set
//! none, so every conv and the fc keep PyTorch's defaults
//! (`kaiming_uniform_(a = sqrt(5))`, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
//! and the same bound for the fc bias); BN weight 1, bias 0.
use super::layers::{bn, linear, through_stages};
use super::{Network, Staged};
use tch::nn::{self, init::FanInOut, init::NonLinearity, init::NormalOrUniform, Init};
use tch::Tensor;

/// PyTorch's default weight initialisation of `nn.Conv2d` and `nn.Linear`:
/// `kaiming_uniform_(a = sqrt(5))` = U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
pub const TORCH_DEFAULT_INIT: Init = Init::Kaiming {
    dist: NormalOrUniform::Uniform,
    fan: FanInOut::FanIn,
    // tch's bound is sqrt(3) * gain / sqrt(fan_in); gain 1/sqrt(3) gives 1/sqrt(fan_in).
    non_linearity: NonLinearity::ExplicitGain(0.577_350_269_189_625_8),
};

/// A convolution with weights from `init`; with `bias`, the bias follows
/// PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
#[allow(clippy::too_many_arguments)]
pub fn conv_with(
    p: &nn::Path,
    cin: i64,
    cout: i64,
    k: i64,
    stride: i64,
    padding: i64,
    bias: bool,
    init: Init,
) -> nn::Conv2D {
    let bound = 1.0 / ((cin * k * k) as f64).sqrt();
    let cfg = nn::ConvConfig {
        stride,
        padding,
        bias,
        ws_init: init,
        bs_init: Init::Uniform {
            lo: -bound,
            up: bound,
        },
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, k, cfg)
}

/// The block type of a four-stage ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Basic,
    Bottleneck,
    PreAct,
}

impl BlockKind {
    pub fn expansion(self) -> i64 {
        match self {
            BlockKind::Bottleneck => 4,
            BlockKind::Basic | BlockKind::PreAct => 1,
        }
    }
}

/// What distinguishes the reference implementations sharing these blocks.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Module name of the projection shortcut: `shortcut` or `downsample`.
    pub shortcut: &'static str,
    /// Weight initialisation of every conv.
    pub conv_init: Init,
    /// ImageNet stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) instead of the
    /// CIFAR one (3x3 conv, BN, ReLU).
    pub imagenet_stem: bool,
}

struct PreActBlock {
    bn1: nn::BatchNorm,
    conv1: nn::Conv2D,
    bn2: nn::BatchNorm,
    conv2: nn::Conv2D,
    shortcut: Option<nn::Conv2D>,
}

enum Block {
    /// Basic or bottleneck: (conv, BN) pairs with ReLUs between, a
    /// projection (conv, BN) or identity shortcut, ReLU after the sum.
    Post {
        layers: Vec<(nn::Conv2D, nn::BatchNorm)>,
        shortcut: Option<Box<(nn::Conv2D, nn::BatchNorm)>>,
    },
    PreAct(Box<PreActBlock>),
}

impl Block {
    fn new(
        p: &nn::Path,
        kind: BlockKind,
        style: &Style,
        cin: i64,
        planes: i64,
        stride: i64,
    ) -> Self {
        let cout = planes * kind.expansion();
        let init = style.conv_init;
        let project = stride != 1 || cin != cout;
        let sp = p / style.shortcut;
        match kind {
            BlockKind::Basic | BlockKind::Bottleneck => {
                // (cin, cout, kernel, stride, padding) of each conv.
                let shapes: Vec<(i64, i64, i64, i64, i64)> = if kind == BlockKind::Basic {
                    vec![(cin, planes, 3, stride, 1), (planes, planes, 3, 1, 1)]
                } else {
                    vec![
                        (cin, planes, 1, 1, 0),
                        (planes, planes, 3, stride, 1),
                        (planes, cout, 1, 1, 0),
                    ]
                };
                let layers = shapes
                    .iter()
                    .enumerate()
                    .map(|(i, &(ci, co, k, s, pad))| {
                        let c = conv_with(
                            &(p / format!("conv{}", i + 1)),
                            ci,
                            co,
                            k,
                            s,
                            pad,
                            false,
                            init,
                        );
                        (c, bn(&(p / format!("bn{}", i + 1)), co))
                    })
                    .collect();
                let shortcut = project.then(|| {
                    Box::new((
                        conv_with(&(&sp / 0), cin, cout, 1, stride, 0, false, init),
                        bn(&(&sp / 1), cout),
                    ))
                });
                Block::Post { layers, shortcut }
            }
            BlockKind::PreAct => Block::PreAct(Box::new(PreActBlock {
                bn1: bn(&(p / "bn1"), cin),
                conv1: conv_with(&(p / "conv1"), cin, planes, 3, stride, 1, false, init),
                bn2: bn(&(p / "bn2"), planes),
                conv2: conv_with(&(p / "conv2"), planes, planes, 3, 1, 1, false, init),
                shortcut: project
                    .then(|| conv_with(&(&sp / 0), cin, cout, 1, stride, 0, false, init)),
            })),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Block::Post { layers, shortcut } => {
                let last = layers.len() - 1;
                let mut out = x.shallow_clone();
                for (i, (c, b)) in layers.iter().enumerate() {
                    out = out.apply(c).apply_t(b, train);
                    if i < last {
                        out = out.relu_();
                    }
                }
                let short = match shortcut {
                    Some(cb) => x.apply(&cb.0).apply_t(&cb.1, train),
                    None => x.shallow_clone(),
                };
                (out + short).relu_()
            }
            Block::PreAct(b) => {
                let act = x.apply_t(&b.bn1, train).relu_();
                let short = match &b.shortcut {
                    Some(c) => act.apply(c),
                    None => x.shallow_clone(),
                };
                let out = act
                    .apply(&b.conv1)
                    .apply_t(&b.bn2, train)
                    .relu_()
                    .apply(&b.conv2);
                out + short
            }
        }
    }
}

/// A four-stage ResNet (see the module documentation).
pub struct ResNet {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    imagenet_stem: bool,
    stages: Vec<Vec<Block>>,
    /// Output channels of every stage.
    widths: Vec<i64>,
    fc: nn::Linear,
}

impl ResNet {
    /// `blocks[i]` blocks in stage i (widths 64/128/256/512 times the
    /// expansion, strides 1/2/2/2).
    pub fn new(
        root: &nn::Path,
        kind: BlockKind,
        blocks: [i64; 4],
        style: Style,
        classes: i64,
    ) -> Self {
        let (conv1, bn1) = if style.imagenet_stem {
            (
                conv_with(&(root / "conv1"), 3, 64, 7, 2, 3, false, style.conv_init),
                bn(&(root / "bn1"), 64),
            )
        } else {
            (
                conv_with(&(root / "conv1"), 3, 64, 3, 1, 1, false, style.conv_init),
                bn(&(root / "bn1"), 64),
            )
        };
        let mut cin = 64;
        let mut stages = Vec::new();
        let mut widths = Vec::new();
        for (s, (&planes, &n)) in [64i64, 128, 256, 512].iter().zip(blocks.iter()).enumerate() {
            let p = root / format!("layer{}", s + 1);
            let stage = (0..n)
                .map(|b| {
                    let stride = if s > 0 && b == 0 { 2 } else { 1 };
                    let blk = Block::new(&(&p / b), kind, &style, cin, planes, stride);
                    cin = planes * kind.expansion();
                    blk
                })
                .collect();
            stages.push(stage);
            widths.push(cin);
        }
        ResNet {
            conv1,
            bn1,
            imagenet_stem: style.imagenet_stem,
            stages,
            widths,
            fc: linear(&(root / "fc"), cin, classes),
        }
    }

    const CIFAR: Style = Style {
        shortcut: "shortcut",
        conv_init: TORCH_DEFAULT_INIT,
        imagenet_stem: false,
    };

    /// kuangliu's CIFAR ResNet18 (basic blocks [2, 2, 2, 2]).
    pub fn cifar18(root: &nn::Path, classes: i64) -> Self {
        Self::new(root, BlockKind::Basic, [2, 2, 2, 2], Self::CIFAR, classes)
    }

    /// kuangliu's CIFAR ResNet50 (bottleneck blocks [3, 4, 6, 3]).
    pub fn cifar50(root: &nn::Path, classes: i64) -> Self {
        Self::new(
            root,
            BlockKind::Bottleneck,
            [3, 4, 6, 3],
            Self::CIFAR,
            classes,
        )
    }

    /// Self-KD-Lib's CIFAR_ResNet18 (pre-activation blocks [2, 2, 2, 2]).
    pub fn preact18(root: &nn::Path, classes: i64) -> Self {
        Self::new(root, BlockKind::PreAct, [2, 2, 2, 2], Self::CIFAR, classes)
    }
}

impl ResNet {
    /// The forward, keeping the outputs of the stages before the last when
    /// `keep`.
    fn run(&self, xs: &Tensor, train: bool, keep: bool) -> Staged {
        let mut x = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu_();
        if self.imagenet_stem {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        through_stages(x, &self.stages, &self.fc, keep, |b, x| b.forward(x, train))
    }
}

impl Network for ResNet {
    fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let s = self.run(xs, train, false);
        (s.logits, s.features)
    }

    fn stage_channels(&self) -> Option<Vec<i64>> {
        Some(self.widths.clone())
    }

    fn forward_stages(&self, xs: &Tensor, train: bool) -> Option<Staged> {
        Some(self.run(xs, train, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(name: &str, classes: i64) -> i64 {
        crate::model::count_parameters(name, classes).unwrap()
    }

    #[test]
    fn parameter_counts_match_pytorch() {
        // kuangliu/pytorch-cifar ResNet18 on CIFAR-10; the rest computed
        // with tests/python/cifar_models.py.
        assert_eq!(count("resnet18", 10), 11_173_962);
        assert_eq!(count("resnet18", 100), 11_220_132);
        assert_eq!(count("resnet50", 10), 23_520_842);
        assert_eq!(count("resnet50", 100), 23_705_252);
        assert_eq!(count("preact_resnet18", 10), 11_171_274);
        assert_eq!(count("preact_resnet18", 100), 11_217_444);
    }

    #[test]
    fn names_follow_the_reference_modules() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = ResNet::cifar50(&vs.root(), 100);
        let names: std::collections::BTreeSet<String> = vs.variables().into_keys().collect();
        for n in [
            "conv1.weight",
            "bn1.running_mean",
            "layer1.0.conv3.weight",
            "layer1.0.shortcut.0.weight",
            "layer1.0.shortcut.1.running_var",
            "layer4.2.bn3.bias",
            "fc.weight",
        ] {
            assert!(names.contains(n), "{n} missing");
        }
        assert!(!names.contains("layer1.1.shortcut.0.weight"));
        let (z, h) = net.forward(
            &Tensor::zeros([2, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu)),
            false,
        );
        assert_eq!((z.size(), h.size()), (vec![2, 100], vec![2, 2048]));

        let vs = nn::VarStore::new(tch::Device::Cpu);
        ResNet::preact18(&vs.root(), 10);
        let names: std::collections::BTreeSet<String> = vs.variables().into_keys().collect();
        assert!(names.contains("layer2.0.shortcut.0.weight"));
        assert!(!names.contains("layer2.0.shortcut.1.weight"));
        assert!(names.contains("layer1.0.bn1.weight") && names.contains("bn1.weight"));
    }
}
