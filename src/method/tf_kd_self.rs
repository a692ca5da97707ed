//! TF-KD-self, teacher-free knowledge distillation by self-training (Yuan
//! et al., CVPR 2020; official code yuanli2333/Teacher-free-Knowledge-
//! Distillation, `my_loss_function.py::loss_kd_self` and `train_kd.py`,
//! docs/method.md §15): a network is distilled from an already trained
//! network of the same architecture, the teacher, which runs in eval mode
//! over the same batch without gradient:
//!
//! L = (1 − α) · CE(z, y) + α · T² · multiplier · KLDivLoss(log_softmax(z/T), softmax(z_t/T))
//!
//! `nn.KLDivLoss()` with its default reduction averages over batch *and*
//! classes (`kl_reduction = "element_mean"`), so the KL's effective weight
//! against the batch-mean KL of the definition is α · T² · multiplier / K:
//! 0.95 · 36 · 50 / 100 = 17.1 for the official ResNet-18 CIFAR-100
//! parameters.
//!
//! The teacher is a run the suite names (`teacher` of `[arm.NAME]`, by
//! default the `baseline` run of the same architecture and seed); its
//! checkpoint hash is part of the student's config.
use crate::method::arms::ArmConfig;
use crate::method::loss::{cross_entropy, kl_div, KlReduction};
use crate::method::plan::StepPlan;
use crate::method::step::{Loss, Method, StepData};
use serde::{Deserialize, Serialize};

/// The constants of TF-KD-self: the official ResNet-18 CIFAR-100 values
/// (`experiments/kd_experiments/resnet18_distill/resnet18_self_teacher/
/// params.json`: `alpha` 0.95, `temperature` 6, `multiplier` 50).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TfKdSelfConfig {
    /// α: the KL's share; the CE is weighted 1 − α.
    pub alpha: f64,
    /// T, on the student's and the teacher's logits.
    pub temperature: f64,
    /// A factor on the KL term (1 in most of the official experiments, 50
    /// for ResNet-18).
    pub multiplier: f64,
    /// `element_mean` (PyTorch's default `KLDivLoss()`) or `batch_mean`.
    pub kl_reduction: KlReduction,
}

impl Default for TfKdSelfConfig {
    fn default() -> Self {
        TfKdSelfConfig {
            alpha: 0.95,
            temperature: 6.0,
            multiplier: 50.0,
            kl_reduction: KlReduction::ElementMean,
        }
    }
}

impl TfKdSelfConfig {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(("alpha", "expected a value in [0, 1]".into()));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(("temperature", "expected a positive value".into()));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 0.0) {
            return Err(("multiplier", "expected a finite value >= 0".into()));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!(
            "alpha {}  T {}  multiplier {}",
            self.alpha, self.temperature, self.multiplier
        )
    }
}

/// The baseline's step, with the teacher over view 0.
pub fn plan(arm: &ArmConfig) -> StepPlan {
    StepPlan {
        teacher: true,
        ..StepPlan::one_view(arm.distortions[0], &["ce", "kl"])
    }
}

pub struct TfKdSelf {
    cfg: TfKdSelfConfig,
    plan: StepPlan,
}

impl TfKdSelf {
    pub fn new(arm: &ArmConfig, cfg: &TfKdSelfConfig) -> Self {
        TfKdSelf {
            cfg: cfg.clone(),
            plan: plan(arm),
        }
    }
}

impl Method for TfKdSelf {
    fn plan(&self) -> &StepPlan {
        &self.plan
    }

    fn loss(&mut self, s: &StepData) -> anyhow::Result<Loss> {
        let (z, _) = s.view(&self.plan, 0);
        let teacher = s
            .teacher
            .ok_or_else(|| anyhow::anyhow!("tf_kd_self: the step has no teacher outputs"))?;
        let c = &self.cfg;
        let t = c.temperature;
        let kl = kl_div(&z, &teacher.logits.detach(), t, c.kl_reduction);
        let ce = cross_entropy(&z, s.labels) * (1.0 - c.alpha);
        let kl = kl * (c.alpha * t * t * c.multiplier);
        Ok(Loss::of_terms(vec![ce, kl], z))
    }
}
