//! Label smoothing (Szegedy et al., CVPR 2016; docs/method.md §12): the
//! cross-entropy against a smoothed target, ε = 0.1.
//!
//! - `smoothing = "uniform"` (default): (1 − ε) · onehot(y) + ε / K on every
//!   class, the paper's definition, computed by libtorch's own
//!   `cross_entropy(..., label_smoothing = ε)` as PyTorch computes it;
//! - `smoothing = "others"`: 1 − ε on the true class and ε / (K − 1) on
//!   each other class, the arithmetic of Self-KD-Lib's `methods/
//!   label_smooth.py` and of Teacher-free KD's `loss_label_smoothing`
//!   (`−Σ smoothed · log_softmax(z) / N`).
use crate::method::arms::ArmConfig;
use crate::method::plan::StepPlan;
use crate::method::step::{Loss, Method, StepData};
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Smoothing {
    /// ε / K on every class (Szegedy et al.; PyTorch's `label_smoothing`).
    Uniform,
    /// ε / (K − 1) on the other classes (Self-KD-Lib, Teacher-free KD).
    Others,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSmoothingConfig {
    /// ε, the mass moved off the true class.
    pub epsilon: f64,
    pub smoothing: Smoothing,
}

impl Default for LabelSmoothingConfig {
    fn default() -> Self {
        LabelSmoothingConfig {
            epsilon: 0.1,
            smoothing: Smoothing::Uniform,
        }
    }
}

impl LabelSmoothingConfig {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.epsilon) {
            return Err(("epsilon", "expected a value in [0, 1]".into()));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        let s = match self.smoothing {
            Smoothing::Uniform => "uniform",
            Smoothing::Others => "others",
        };
        format!("epsilon {}  smoothing {s}", self.epsilon)
    }

    /// The smoothed cross-entropy of `logits` for labels `y`.
    pub fn loss(&self, logits: &Tensor, y: &Tensor) -> Tensor {
        let e = self.epsilon;
        match self.smoothing {
            Smoothing::Uniform => {
                logits.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, e)
            }
            Smoothing::Others => {
                let (n, k) = (logits.size()[0], logits.size()[1]);
                let off = e / (k - 1).max(1) as f64;
                let t = Tensor::full([n, k], off, (Kind::Float, logits.device())).scatter_value(
                    1,
                    &y.unsqueeze(1),
                    1.0 - e,
                );
                -(logits.log_softmax(1, Kind::Float) * t).sum(Kind::Float) / n as f64
            }
        }
    }
}

/// One view, one pass: the baseline's step.
pub fn plan(arm: &ArmConfig) -> StepPlan {
    StepPlan::one_view(arm.distortions[0], &["soft_ce"])
}

pub struct LabelSmoothing {
    cfg: LabelSmoothingConfig,
    plan: StepPlan,
}

impl LabelSmoothing {
    pub fn new(arm: &ArmConfig, cfg: &LabelSmoothingConfig) -> Self {
        LabelSmoothing {
            cfg: cfg.clone(),
            plan: plan(arm),
        }
    }
}

impl Method for LabelSmoothing {
    fn plan(&self) -> &StepPlan {
        &self.plan
    }

    fn loss(&mut self, s: &StepData) -> anyhow::Result<Loss> {
        let (z, _) = s.view(&self.plan, 0);
        let l = self.cfg.loss(&z, s.labels);
        Ok(Loss::of_terms(vec![l], z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_smoothings_by_hand() {
        let z = Tensor::from_slice(&[1.0f32, 2.0, 0.5, -1.0, 0.0, 3.0]).view([2, 3]);
        let y = Tensor::from_slice(&[1i64, 2]);
        let lp = z.log_softmax(1, Kind::Float);
        let v = |r: i64, c: i64| lp.double_value(&[r, c]);
        let e = 0.1;
        let mut uni = 0.0;
        let mut oth = 0.0;
        for (r, t) in [(0i64, 1i64), (1, 2)] {
            for c in 0..3 {
                let (qu, qo) = if c == t {
                    (1.0 - e + e / 3.0, 1.0 - e)
                } else {
                    (e / 3.0, e / 2.0)
                };
                uni -= qu * v(r, c) / 2.0;
                oth -= qo * v(r, c) / 2.0;
            }
        }
        let u = LabelSmoothingConfig::default();
        assert!((u.loss(&z, &y).double_value(&[]) - uni).abs() < 1e-6);
        let o = LabelSmoothingConfig {
            smoothing: Smoothing::Others,
            ..u
        };
        assert!((o.loss(&z, &y).double_value(&[]) - oth).abs() < 1e-6);
        assert!(LabelSmoothingConfig { epsilon: -0.1, ..o }.check().is_err());
    }
}
