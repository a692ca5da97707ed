//! torchvision's ImageNet networks, with torchvision's module names so that a
//! ddgsd-bench checkpoint loads into `torchvision.models.resnet18()`,
//! `resnet50()` or `alexnet()` with `load_state_dict(strict=True)`.
//!
//! - ResNet-18 / ResNet-50 (`torchvision.models.resnet`): 7x7/2 conv, BN,
//!   ReLU, 3x3/2 max-pool, four stages (basic [2, 2, 2, 2] / bottleneck
//!   [3, 4, 6, 3], stride on the 3x3 conv), `downsample.0/1` projection
//!   shortcuts, `avgpool` (a mean over H and W here: identical to
//!   `AdaptiveAvgPool2d(1)`), `fc`. Initialisation as torchvision: Kaiming
//!   normal fan-out convs, BN weight 1 bias 0, default `nn.Linear` fc
//!   (`zero_init_residual = False`).
//! - AlexNet (`torchvision.models.alexnet`): `features.{0,3,6,8,10}` convs
//!   (with bias) and max-pools, `AdaptiveAvgPool2d((6, 6))` (the identity on
//!   the 6x6 map of a 224x224 input, applied only when the map is not 6x6),
//!   `classifier`: Dropout(0.5), `classifier.1` 9216->4096, ReLU,
//!   Dropout(0.5), `classifier.4` 4096->4096, ReLU, `classifier.6`. torchvision
//!   sets no initialisation for AlexNet, so every layer keeps PyTorch's
//!   default: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)). The
//!   features are the 4096-d input of `classifier.6`.
use super::layers::{linear, CONV_INIT};
use super::resnet::{conv_with, BlockKind, ResNet, Style, TORCH_DEFAULT_INIT};
use super::Network;
use tch::{nn, Tensor};

const TORCHVISION: Style = Style {
    shortcut: "downsample",
    conv_init: CONV_INIT,
    imagenet_stem: true,
};

/// torchvision's `resnet18(num_classes = classes)`.
pub fn resnet18(root: &nn::Path, classes: i64) -> ResNet {
    ResNet::new(root, BlockKind::Basic, [2, 2, 2, 2], TORCHVISION, classes)
}

/// torchvision's `resnet50(num_classes = classes)`.
pub fn resnet50(root: &nn::Path, classes: i64) -> ResNet {
    ResNet::new(
        root,
        BlockKind::Bottleneck,
        [3, 4, 6, 3],
        TORCHVISION,
        classes,
    )
}

/// torchvision's `alexnet(num_classes = classes)` (dropout 0.5).
pub struct AlexNet {
    convs: Vec<nn::Conv2D>,
    fc1: nn::Linear,
    fc2: nn::Linear,
    fc3: nn::Linear,
}

impl AlexNet {
    pub fn new(root: &nn::Path, classes: i64) -> Self {
        let f = root / "features";
        // (index in `features`, cin, cout, kernel, stride, padding)
        let convs = [
            (0, 3, 64, 11, 4, 2),
            (3, 64, 192, 5, 1, 2),
            (6, 192, 384, 3, 1, 1),
            (8, 384, 256, 3, 1, 1),
            (10, 256, 256, 3, 1, 1),
        ]
        .iter()
        .map(|&(i, cin, cout, k, s, p)| {
            conv_with(&(&f / i), cin, cout, k, s, p, true, TORCH_DEFAULT_INIT)
        })
        .collect();
        let c = root / "classifier";
        AlexNet {
            convs,
            fc1: linear(&(&c / 1), 256 * 6 * 6, 4096),
            fc2: linear(&(&c / 4), 4096, 4096),
            fc3: linear(&(&c / 6), 4096, classes),
        }
    }
}

impl Network for AlexNet {
    fn forward(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let pool = |t: Tensor| t.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false);
        let c = &self.convs;
        let mut x = pool(xs.apply(&c[0]).relu_());
        x = pool(x.apply(&c[1]).relu_());
        x = x
            .apply(&c[2])
            .relu_()
            .apply(&c[3])
            .relu_()
            .apply(&c[4])
            .relu_();
        x = pool(x);
        let s = x.size();
        if s[2] != 6 || s[3] != 6 {
            x = x.adaptive_avg_pool2d([6, 6]);
        }
        let x = x.flatten(1, -1);
        let x = x.dropout(0.5, train).apply(&self.fc1).relu_();
        let feats = x.dropout(0.5, train).apply(&self.fc2).relu_();
        let logits = feats.apply(&self.fc3);
        (logits, feats)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Network;
    use tch::{nn, Device, Kind, Tensor};

    fn count(name: &str, classes: i64) -> i64 {
        crate::model::count_parameters(name, classes).unwrap()
    }

    #[test]
    fn parameter_counts_match_torchvision() {
        assert_eq!(count("imagenet_resnet18", 1000), 11_689_512);
        assert_eq!(count("imagenet_resnet50", 1000), 25_557_032);
        assert_eq!(count("alexnet", 1000), 61_100_840);
    }

    #[test]
    fn alexnet_names_shapes_and_dropout() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = super::AlexNet::new(&vs.root(), 5);
        let names: std::collections::BTreeSet<String> = vs.variables().into_keys().collect();
        for n in [
            "features.0.bias",
            "features.3.weight",
            "features.10.weight",
            "classifier.1.weight",
            "classifier.4.bias",
            "classifier.6.weight",
        ] {
            assert!(names.contains(n), "{n} missing");
        }
        let x = Tensor::randn([2, 3, 224, 224], (Kind::Float, Device::Cpu));
        let (z, h) = tch::no_grad(|| net.forward(&x, false));
        assert_eq!((z.size(), h.size()), (vec![2, 5], vec![2, 4096]));
        let (z2, _) = tch::no_grad(|| net.forward(&x, false));
        assert!(z.equal(&z2), "eval mode is deterministic");
        // A smaller input goes through the adaptive pool.
        let (z, _) = tch::no_grad(|| {
            net.forward(
                &Tensor::randn([1, 3, 160, 160], (Kind::Float, Device::Cpu)),
                true,
            )
        });
        assert_eq!(z.size(), vec![1, 5]);
    }
}
