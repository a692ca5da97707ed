//! DenseNet-BC for CIFAR (Huang et al. 2017): DenseNet-BC-100 with growth
//! rate k = 12, bottleneck width 4k, compression 0.5.
//!
//! `conv1` (3x3, 2k channels, no BN); three dense blocks `dense1`..`dense3`
//! of (depth - 4) / 6 bottleneck layers, each (`bn1`, `conv1` 1x1 -> 4k,
//! `bn2`, `conv2` 3x3 -> k) computing `conv2(relu(bn2(conv1(relu(bn1(x))))))`
//! and concatenating it *after* its input (`cat([x, new])`, as torchvision);
//! transitions `trans1`, `trans2` (`bn`, `conv` 1x1 to floor(C / 2), 2x2
//! average pool); final `bn`, ReLU, a mean over H and W, `fc`.
//!
//! Initialisation as torchvision's DenseNet: convs Kaiming normal fan-in
//! (`kaiming_normal_`), BN weight 1 bias 0, fc bias 0 and weight PyTorch's
//! default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
use super::layers::{bn, global_pool};
use super::resnet::conv_with;
use super::Network;
use tch::nn::{self, init::DEFAULT_KAIMING_NORMAL, Init};
use tch::Tensor;

fn conv(p: &nn::Path, cin: i64, cout: i64, k: i64, padding: i64) -> nn::Conv2D {
    conv_with(p, cin, cout, k, 1, padding, false, DEFAULT_KAIMING_NORMAL)
}

struct DenseLayer {
    bn1: nn::BatchNorm,
    conv1: nn::Conv2D,
    bn2: nn::BatchNorm,
    conv2: nn::Conv2D,
}

struct Transition {
    bn: nn::BatchNorm,
    conv: nn::Conv2D,
}

pub struct DenseNetBc {
    conv1: nn::Conv2D,
    blocks: Vec<Vec<DenseLayer>>,
    trans: Vec<Transition>,
    bn: nn::BatchNorm,
    fc: nn::Linear,
}

impl DenseNetBc {
    /// DenseNet-BC-`depth` with growth rate `growth` (depth = 6n + 4).
    pub fn new(root: &nn::Path, depth: i64, growth: i64, classes: i64) -> Self {
        let n = (depth - 4) / 6;
        let mut c = 2 * growth;
        let conv1 = conv(&(root / "conv1"), 3, c, 3, 1);
        let (mut blocks, mut trans) = (Vec::new(), Vec::new());
        for b in 0..3 {
            let p = root / format!("dense{}", b + 1);
            let layers = (0..n)
                .map(|i| {
                    let q = &p / i;
                    let l = DenseLayer {
                        bn1: bn(&(&q / "bn1"), c),
                        conv1: conv(&(&q / "conv1"), c, 4 * growth, 1, 0),
                        bn2: bn(&(&q / "bn2"), 4 * growth),
                        conv2: conv(&(&q / "conv2"), 4 * growth, growth, 3, 1),
                    };
                    c += growth;
                    l
                })
                .collect();
            blocks.push(layers);
            if b < 2 {
                let q = root / format!("trans{}", b + 1);
                let out = c / 2;
                trans.push(Transition {
                    bn: bn(&(&q / "bn"), c),
                    conv: conv(&(&q / "conv"), c, out, 1, 0),
                });
                c = out;
            }
        }
        let bound = 1.0 / (c as f64).sqrt();
        let fc_cfg = nn::LinearConfig {
            ws_init: Init::Uniform {
                lo: -bound,
                up: bound,
            },
            bs_init: Some(Init::Const(0.0)),
            bias: true,
        };
        DenseNetBc {
            conv1,
            blocks,
            trans,
            bn: bn(&(root / "bn"), c),
            fc: nn::linear(root / "fc", c, classes, fc_cfg),
        }
    }
}

impl Network for DenseNetBc {
    fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut x = xs.apply(&self.conv1);
        for (b, layers) in self.blocks.iter().enumerate() {
            for l in layers {
                let out = x.apply_t(&l.bn1, train).relu_().apply(&l.conv1);
                let out = out.apply_t(&l.bn2, train).relu_().apply(&l.conv2);
                x = Tensor::cat(&[&x, &out], 1);
            }
            if let Some(t) = self.trans.get(b) {
                x = x.apply_t(&t.bn, train).relu_().apply(&t.conv).avg_pool2d(
                    [2, 2],
                    [2, 2],
                    [0, 0],
                    false,
                    true,
                    None::<i64>,
                );
            }
        }
        let feats = global_pool(&x.apply_t(&self.bn, train).relu_());
        let logits = feats.apply(&self.fc);
        (logits, feats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densenet_bc100_matches_the_literature() {
        for (classes, want) in [(10, 769_162), (100, 800_032)] {
            assert_eq!(
                crate::model::count_parameters("densenet_bc100", classes).unwrap(),
                want
            );
        }
    }

    #[test]
    fn names_and_shapes() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = DenseNetBc::new(&vs.root(), 10, 4, 3);
        let names: std::collections::BTreeSet<String> = vs.variables().into_keys().collect();
        for n in [
            "conv1.weight",
            "dense1.0.bn1.weight",
            "dense3.0.conv2.weight",
            "trans1.conv.weight",
            "trans2.bn.running_mean",
            "bn.bias",
            "fc.weight",
        ] {
            assert!(names.contains(n), "{n} missing");
        }
        let (z, h) = net.forward(
            &Tensor::zeros([2, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu)),
            false,
        );
        // 8 -> +4 = 12 -> 6 -> +4 = 10 -> 5 -> +4 = 9 channels.
        assert_eq!((z.size(), h.size()), (vec![2, 3], vec![2, 9]));
    }
}
