//! TF-KD-reg, teacher-free knowledge distillation by a virtual teacher
//! (Yuan et al., CVPR 2020; official code
//! yuanli2333/Teacher-free-Knowledge-Distillation, `my_loss_function.py::
//! loss_kd_regularization`, docs/method.md §11):
//!
//! p^d = a on the true class, (1 − a)/(K − 1) elsewhere
//! L = (1 − α) · CE(z, y) + α · multiplier · KLDivLoss(log_softmax(z), softmax(p^d / T))
//!
//! reproduced with the official code's three quirks by default: the
//! temperature divides the virtual teacher's *probabilities* before a
//! softmax (so at T = 20 the target is within 0.05% of uniform), the
//! student's logits get no temperature (`student_temperature = false`,
//! the maintainer's answer in the repository's issue #3, questioned in
//! #24), and `nn.KLDivLoss()` averages over batch *and* classes
//! (`kl_reduction = "element_mean"`, issue #41), which the `multiplier`
//! of 100 undoes for K = 100.
use crate::method::arms::ArmConfig;
use crate::method::loss::{cross_entropy, reduce, KlReduction};
use crate::method::plan::StepPlan;
use crate::method::step::{Loss, Method, StepData};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The constants of TF-KD-reg: the official ResNet-18 CIFAR-100 values
/// (`experiments/base_experiments/base_resnet18/params.json`: `reg_alpha`
/// 0.1, `reg_temperature` 20, `multiplier` 100; `correct_prob = 0.99` in
/// `loss_kd_regularization`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TfKdRegConfig {
    /// α: the KL's share; the CE is weighted 1 − α.
    pub alpha: f64,
    /// T, applied to the virtual teacher's probabilities.
    pub temperature: f64,
    /// a: the virtual teacher's probability of the true class.
    pub correct_prob: f64,
    /// A factor on the KL term.
    pub multiplier: f64,
    /// `element_mean` (PyTorch's default `KLDivLoss()`: over batch and
    /// classes) or `batch_mean` (the KL's definition).
    pub kl_reduction: KlReduction,
    /// Divide the student's logits by T too (the paper's equation; the
    /// official code does not).
    pub student_temperature: bool,
}

impl Default for TfKdRegConfig {
    fn default() -> Self {
        TfKdRegConfig {
            alpha: 0.1,
            temperature: 20.0,
            correct_prob: 0.99,
            multiplier: 100.0,
            kl_reduction: KlReduction::ElementMean,
            student_temperature: false,
        }
    }
}

impl TfKdRegConfig {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(("alpha", "expected a value in [0, 1]".into()));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(("temperature", "expected a positive value".into()));
        }
        if !(self.correct_prob > 0.0 && self.correct_prob < 1.0) {
            return Err(("correct_prob", "expected a value in (0, 1)".into()));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 0.0) {
            return Err(("multiplier", "expected a finite value >= 0".into()));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!(
            "alpha {}  T {}  a {}  multiplier {}",
            self.alpha, self.temperature, self.correct_prob, self.multiplier
        )
    }

    /// The virtual teacher's distribution for labels `y` (`[B, K]`).
    pub fn teacher(&self, y: &Tensor, classes: i64) -> Tensor {
        let a = self.correct_prob;
        let off = (1.0 - a) / (classes - 1).max(1) as f64;
        let b = y.size()[0];
        let p = Tensor::full([b, classes], off, (Kind::Float, y.device()));
        let p = p.scatter_value(1, &y.unsqueeze(1), a);
        (p / self.temperature).softmax(1, Kind::Float)
    }
}

/// One view, one pass: the baseline's step.
pub fn plan(arm: &ArmConfig) -> StepPlan {
    StepPlan::one_view(arm.distortions[0], &["ce", "kl"])
}

pub struct TfKdReg {
    cfg: TfKdRegConfig,
    plan: StepPlan,
}

impl TfKdReg {
    pub fn new(arm: &ArmConfig, cfg: &TfKdRegConfig) -> Self {
        TfKdReg {
            cfg: cfg.clone(),
            plan: plan(arm),
        }
    }
}

impl Method for TfKdReg {
    fn plan(&self) -> &StepPlan {
        &self.plan
    }

    fn loss(&mut self, s: &StepData) -> anyhow::Result<Loss> {
        let (z, _) = s.view(&self.plan, 0);
        let c = &self.cfg;
        let q = c.teacher(s.labels, z.size()[1]);
        let zs = if c.student_temperature {
            &z / c.temperature
        } else {
            z.shallow_clone()
        };
        // KLDivLoss(input = log p, target = q) = q (log q − log p).
        let kl = reduce(
            &(&q * (q.log() - zs.log_softmax(1, Kind::Float))),
            c.kl_reduction,
        );
        let ce = cross_entropy(&z, s.labels) * (1.0 - c.alpha);
        let kl = kl * (c.alpha * c.multiplier);
        Ok(Loss::of_terms(vec![ce, kl], z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_virtual_teacher_is_almost_uniform() {
        let c = TfKdRegConfig::default();
        let q = c.teacher(&Tensor::from_slice(&[3i64]), 100);
        let v = Vec::<f32>::try_from(q.view([-1])).unwrap();
        // softmax of (0.99 on class 3, 0.0001 elsewhere) / 20.
        let hi = (0.99f64 / 20.0).exp();
        let lo = (0.0001f64 / 20.0).exp();
        let want_hi = hi / (hi + 99.0 * lo);
        assert!((f64::from(v[3]) - want_hi).abs() < 1e-7, "{}", v[3]);
        assert!((want_hi - 0.010_503).abs() < 1e-5);
        assert!((f64::from(v[0]) - lo / (hi + 99.0 * lo)).abs() < 1e-7);
        assert!(TfKdRegConfig {
            correct_prob: 1.0,
            ..c
        }
        .check()
        .is_err());
    }
}
