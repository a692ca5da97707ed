//! Wide ResNet WRN-d-k (Zagoruyko and Komodakis 2016) for CIFAR, in the
//! layout and with the module names of the common PyTorch port
//! (xternalz/WideResNet-pytorch), dropout 0:
//!
//! `conv1` (3x3, 16 channels); `block1`..`block3`, each `layer.<i>` of
//! (d - 4) / 6 pre-activation blocks with widths 16k/32k/64k and strides
//! 1/2/2; final `bn1`, ReLU, a mean over H and W, `fc`.
//!
//! A block (`bn1`, `conv1`, `bn2`, `conv2`, and `convShortcut` when its input
//! and output widths differ): `a = relu(bn1(x))`,
//! `out = conv2(relu(bn2(conv1(a))))` (stride on `conv1`), plus `x` when the
//! widths are equal or `convShortcut(a)` (strided 1x1 conv) otherwise.
//!
//! Initialisation as the reference: convs normal(0, sqrt(2 / (k * k * out)))
//! (Kaiming normal fan-out), BN weight 1 bias 0, fc bias 0 and weight
//! PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
use super::layers::{bn, conv, global_pool};
use super::Network;
use tch::nn::{self, Init};
use tch::Tensor;

/// `wrn<d>_<k>` with d = 6n + 4, n >= 1, k >= 1.
pub fn parse(name: &str) -> Option<(i64, i64)> {
    let (d, k) = name.strip_prefix("wrn")?.split_once('_')?;
    let (d, k): (i64, i64) = (d.parse().ok()?, k.parse().ok()?);
    (d >= 10 && (d - 4) % 6 == 0 && k >= 1).then_some((d, k))
}

struct Block {
    bn1: nn::BatchNorm,
    conv1: nn::Conv2D,
    bn2: nn::BatchNorm,
    conv2: nn::Conv2D,
    shortcut: Option<nn::Conv2D>,
}

impl Block {
    fn new(p: &nn::Path, cin: i64, cout: i64, stride: i64) -> Self {
        Block {
            bn1: bn(&(p / "bn1"), cin),
            conv1: conv(&(p / "conv1"), cin, cout, 3, stride, 1),
            bn2: bn(&(p / "bn2"), cout),
            conv2: conv(&(p / "conv2"), cout, cout, 3, 1, 1),
            shortcut: (cin != cout).then(|| conv(&(p / "convShortcut"), cin, cout, 1, stride, 0)),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let a = x.apply_t(&self.bn1, train).relu_();
        let out = a
            .apply(&self.conv1)
            .apply_t(&self.bn2, train)
            .relu_()
            .apply(&self.conv2);
        match &self.shortcut {
            Some(c) => out + a.apply(c),
            None => out + x,
        }
    }
}

pub struct WideResNet {
    conv1: nn::Conv2D,
    blocks: Vec<Block>,
    bn1: nn::BatchNorm,
    fc: nn::Linear,
}

impl WideResNet {
    pub fn new(root: &nn::Path, depth: i64, k: i64, classes: i64) -> Self {
        let n = (depth - 4) / 6;
        let mut cin = 16;
        let mut blocks = Vec::new();
        for (s, w) in [16 * k, 32 * k, 64 * k].into_iter().enumerate() {
            let p = root / format!("block{}", s + 1) / "layer";
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                blocks.push(Block::new(&(&p / b), cin, w, stride));
                cin = w;
            }
        }
        let bound = 1.0 / (cin as f64).sqrt();
        let fc_cfg = nn::LinearConfig {
            ws_init: Init::Uniform {
                lo: -bound,
                up: bound,
            },
            bs_init: Some(Init::Const(0.0)),
            bias: true,
        };
        WideResNet {
            conv1: conv(&(root / "conv1"), 3, 16, 3, 1, 1),
            blocks,
            bn1: bn(&(root / "bn1"), cin),
            fc: nn::linear(root / "fc", cin, classes, fc_cfg),
        }
    }
}

impl Network for WideResNet {
    fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut x = xs.apply(&self.conv1);
        for b in &self.blocks {
            x = b.forward(&x, train);
        }
        let feats = global_pool(&x.apply_t(&self.bn1, train).relu_());
        let logits = feats.apply(&self.fc);
        (logits, feats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(name: &str, classes: i64) -> i64 {
        crate::model::count_parameters(name, classes).unwrap()
    }

    #[test]
    fn parameter_counts() {
        assert_eq!(count("wrn28_10", 10), 36_479_194);
        assert_eq!(count("wrn28_10", 100), 36_536_884);
        assert_eq!(count("wrn16_4", 10), 2_748_890);
        assert_eq!(count("wrn16_4", 100), 2_772_020);
    }

    #[test]
    fn names_and_parsing() {
        assert_eq!(parse("wrn28_10"), Some((28, 10)));
        assert_eq!(parse("wrn27_10"), None);
        assert_eq!(parse("wrn28"), None);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = WideResNet::new(&vs.root(), 10, 1, 10);
        let names: std::collections::BTreeSet<String> = vs.variables().into_keys().collect();
        for n in [
            "conv1.weight",
            "block1.layer.0.bn1.weight",
            "block2.layer.0.convShortcut.weight",
            "bn1.running_var",
            "fc.bias",
        ] {
            assert!(names.contains(n), "{n} missing");
        }
        // k = 1: block1 keeps 16 channels, so it has no shortcut conv.
        assert!(!names.contains("block1.layer.0.convShortcut.weight"));
        let (z, h) = net.forward(
            &Tensor::zeros([2, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu)),
            false,
        );
        assert_eq!((z.size(), h.size()), (vec![2, 10], vec![2, 64]));
    }
}
