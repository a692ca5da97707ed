//! Layer constructors with the initialisations of the reference code:
//! Kaiming-normal fan-out convolutions, BN weight 1 / bias 0, and
//! torchvision's Linear (weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
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
