//! Layer constructors with the initialisations of the reference code:
//! Kaiming-normal fan-out convolutions, BN weight 1 / bias 0, and
//! torchvision's Linear (weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
use super::Staged;
use tch::nn::{self, init::FanInOut, init::NonLinearity, init::NormalOrUniform, Init};

pub const CONV_INIT: Init = Init::Kaiming {
    dist: NormalOrUniform::Normal,
    fan: FanInOut::FanOut,
    non_linearity: NonLinearity::ReLU,
};

/// A bias-free convolution with Kaiming-normal fan-out weights.
pub fn conv(p: &nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding,
        bias: false,
        ws_init: CONV_INIT,
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, k, cfg)
}

/// BatchNorm2d with PyTorch's defaults (eps 1e-5, momentum 0.1).
pub fn bn(p: &nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, Default::default())
}

/// torchvision's nn.Linear initialisation.
pub fn linear(p: &nn::Path, cin: i64, cout: i64) -> nn::Linear {
    let bound = 1.0 / (cin as f64).sqrt();
    let cfg = nn::LinearConfig {
        ws_init: Init::Uniform {
            lo: -bound,
            up: bound,
        },
        bs_init: Some(Init::Uniform {
            lo: -bound,
            up: bound,
        }),
        bias: true,
    };
    nn::linear(p, cin, cout, cfg)
}

/// Global average pooling as a mean over H and W (deterministic on CUDA,
/// unlike adaptive_avg_pool2d's backward).
pub fn global_pool(xs: &tch::Tensor) -> tch::Tensor {
    xs.mean_dim(&[2i64, 3][..], false, tch::Kind::Float)
}

/// The stages of a ResNet from the stem's output `x` (`block` runs one
/// block), then the pooled features and `fc`; the outputs of the stages
/// before the last are kept when `keep` (auxiliary heads read them).
pub fn through_stages<B>(
    mut x: tch::Tensor,
    stages: &[Vec<B>],
    fc: &nn::Linear,
    keep: bool,
    block: impl Fn(&B, &tch::Tensor) -> tch::Tensor,
) -> Staged {
    let mut kept = Vec::new();
    for (s, stage) in stages.iter().enumerate() {
        for blk in stage {
            x = block(blk, &x);
        }
        if keep && s + 1 < stages.len() {
            kept.push(x.shallow_clone());
        }
    }
    let features = global_pool(&x);
    let logits = features.apply(fc);
    Staged {
        stages: kept,
        logits,
        features,
    }
}
