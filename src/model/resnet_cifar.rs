//! CIFAR ResNet-(6n+2) of He et al. 2016 (docs/method.md §4): 3x3 conv with `w`
//! channels, three stages of n post-activation basic blocks with w/2w/4w
//! channels and strides 1/2/2, option-A shortcuts (identity; stride-2
//! subsampling with zero-padded channels), global average pooling, fc.
use super::layers::{bn, conv, linear, through_stages};
use super::{Network, Staged};
use tch::{nn, Tensor};

/// `resnet<d>` with d = 6n + 2, n >= 1.
pub fn parse_depth(name: &str) -> Option<i64> {
    let d: i64 = name.strip_prefix("resnet")?.parse().ok()?;
    (d >= 8 && (d - 2) % 6 == 0).then_some(d)
}

struct Block {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    stride: i64,
    pad_channels: i64,
}

impl Block {
    fn new(p: &nn::Path, cin: i64, cout: i64, stride: i64) -> Self {
        Block {
            conv1: conv(&(p / "conv1"), cin, cout, 3, stride, 1),
            bn1: bn(&(p / "bn1"), cout),
            conv2: conv(&(p / "conv2"), cout, cout, 3, 1, 1),
            bn2: bn(&(p / "bn2"), cout),
            stride,
            pad_channels: (cout - cin) / 2,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let out = x.apply(&self.conv1).apply_t(&self.bn1, train).relu_();
        let out = out.apply(&self.conv2).apply_t(&self.bn2, train);
        let short = if self.stride != 1 || self.pad_channels != 0 {
            // Option A: x[:, :, ::2, ::2], zero channels on both sides.
            let sub = x
                .slice(2, 0, None, self.stride)
                .slice(3, 0, None, self.stride);
            sub.constant_pad_nd([0, 0, 0, 0, self.pad_channels, self.pad_channels])
        } else {
            x.shallow_clone()
        };
        (out + short).relu_()
    }
}

pub struct ResNetCifar {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    stages: Vec<Vec<Block>>,
    fc: nn::Linear,
}

impl ResNetCifar {
    pub fn new(root: &nn::Path, depth: i64, width: i64, classes: i64) -> Self {
        let n = (depth - 2) / 6;
        let widths = [width, 2 * width, 4 * width];
        let mut cin = width;
        let mut stages = Vec::new();
        for (s, &w) in widths.iter().enumerate() {
            let p = root / format!("layer{}", s + 1);
            let blocks = (0..n)
                .map(|b| {
                    let stride = if s > 0 && b == 0 { 2 } else { 1 };
                    let blk = Block::new(&(&p / b), cin, w, stride);
                    cin = w;
                    blk
                })
                .collect();
            stages.push(blocks);
        }
        ResNetCifar {
            conv1: conv(&(root / "conv1"), 3, width, 3, 1, 1),
            bn1: bn(&(root / "bn1"), width),
            stages,
            fc: linear(&(root / "fc"), 4 * width, classes),
        }
    }
}

impl ResNetCifar {
    /// The forward, keeping the outputs of the stages before the last when
    /// `keep`.
    fn run(&self, xs: &Tensor, train: bool, keep: bool) -> Staged {
        let x = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu_();
        through_stages(x, &self.stages, &self.fc, keep, |b, x| b.forward(x, train))
    }
}

impl Network for ResNetCifar {
    fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let s = self.run(xs, train, false);
        (s.logits, s.features)
    }

    fn stage_channels(&self) -> Option<Vec<i64>> {
        Some(
            self.stages
                .iter()
                .map(|st| st.last().map_or(0, |b| b.conv2.ws.size()[0]))
                .collect(),
        )
    }

    fn forward_stages(&self, xs: &Tensor, train: bool) -> Option<Staged> {
        Some(self.run(xs, train, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{build, parameter_count, ArchSpec};

    fn count(depth: i64, classes: i64) -> i64 {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let spec = ArchSpec {
            name: format!("resnet{depth}"),
            width: None,
        };
        build(&spec, &vs.root(), classes).unwrap();
        parameter_count(&vs)
    }

    #[test]
    fn parameter_counts_match_the_literature() {
        // He et al. 2016 / akamaster's reference implementation.
        assert_eq!(count(20, 10), 269_722);
        assert_eq!(count(32, 10), 464_154);
        assert_eq!(count(110, 10), 1_727_962);
    }

    #[test]
    fn names_and_shapes() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let spec = ArchSpec {
            name: "resnet8".into(),
            width: Some(8),
        };
        let net = build(&spec, &vs.root(), 7).unwrap();
        let names: std::collections::BTreeSet<String> = vs.variables().into_keys().collect();
        for n in [
            "conv1.weight",
            "bn1.running_var",
            "layer2.0.conv1.weight",
            "layer3.0.bn2.bias",
            "fc.weight",
            "fc.bias",
        ] {
            assert!(names.contains(n), "{n} missing from {names:?}");
        }
        let (logits, feats) = net.forward(
            &Tensor::zeros([2, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu)),
            false,
        );
        assert_eq!(logits.size(), vec![2, 7]);
        assert_eq!(feats.size(), vec![2, 32]);
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(parse_depth("resnet21").is_none());
        assert!(parse_depth("resnet2").is_none());
        assert!(crate::model::lookup("vgg16").is_err());
    }
}
