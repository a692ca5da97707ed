//! BYOT, be your own teacher (Zhang et al., ICCV 2019; public code
//! luanyunteng/pytorch-be-your-own-teacher `train.py`, docs/method.md §16):
//! auxiliary heads after every stage but the last ([`crate::model::heads`])
//! and the deepest head (the network's own classifier) distilled into the
//! shallower ones:
//!
//! L = (1 − α) · Σ_i CE(q_i, y)
//!   + α · Σ_{i < deepest} T² · H(softmax(sg q_deepest / T), softmax(q_i / T))
//!   + β · Σ_{i < deepest} Σ ((F_i − sg F_deepest)² · [F_i > 0 ∨ F_deepest > 0])
//!
//! reproduced as the official code computes it by default: the KD term is a
//! cross-entropy against the deepest head's softened probabilities
//! (`kd_loss_function`: −mean_b Σ_c p·log q; it exceeds the KL by the
//! target's entropy, so its gradient is the KL's), and the hint term sums
//! (`feature_loss_function`: no mean) the masked squared differences of the
//! pooled features over batch and channels. The logits and features of the
//! auxiliary heads come in [`crate::method::Outputs::heads`]; the test
//! accuracy of a BYOT run is its deepest head's.
use crate::method::arms::ArmConfig;
use crate::method::loss::cross_entropy;
use crate::method::plan::StepPlan;
use crate::method::step::{Loss, Method, StepData};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The distillation term between a shallow head and the deepest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KdTarget {
    /// −mean_b Σ_c softmax(q_d/T) log softmax(q_i/T) (the official code).
    SoftCe,
    /// KL(softmax(q_d/T) ‖ softmax(q_i/T)), batch mean (the paper's KL).
    Kl,
}

/// The feature hint between a shallow head and the deepest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hint {
    /// Σ (F_i − F_d)² over the elements where either is positive (the
    /// official `feature_loss_function`).
    MaskedSum,
    /// The mean of (F_i − F_d)² over batch and channels (an L2 hint that
    /// does not grow with the batch).
    MseMean,
}

/// The constants of BYOT: the public implementation's (`train.py`
/// defaults, the README's ResNet-18 / ResNet-50 CIFAR-100 settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByotConfig {
    /// α: the KD terms' weight; every head's CE is weighted 1 − α.
    pub alpha: f64,
    /// T of the KD terms (with the T² factor).
    pub temperature: f64,
    /// β: the hint terms' weight.
    pub beta: f64,
    pub kd: KdTarget,
    pub hint: Hint,
}

impl Default for ByotConfig {
    fn default() -> Self {
        ByotConfig {
            alpha: 0.1,
            temperature: 3.0,
            beta: 1e-6,
            kd: KdTarget::SoftCe,
            hint: Hint::MaskedSum,
        }
    }
}

impl ByotConfig {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(("alpha", "expected a value in [0, 1]".into()));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(("temperature", "expected a positive value".into()));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(("beta", "expected a finite value >= 0".into()));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!(
            "alpha {}  T {}  beta {}",
            self.alpha, self.temperature, self.beta
        )
    }
}

/// One view, one pass, with the auxiliary heads.
pub fn plan(arm: &ArmConfig) -> StepPlan {
    StepPlan {
        heads: true,
        ..StepPlan::one_view(arm.distortions[0], &["ce", "kd", "hint"])
    }
}

pub struct Byot {
    cfg: ByotConfig,
    plan: StepPlan,
}

impl Byot {
    pub fn new(arm: &ArmConfig, cfg: &ByotConfig) -> Self {
        Byot {
            cfg: cfg.clone(),
            plan: plan(arm),
        }
    }
}

impl Method for Byot {
    fn plan(&self) -> &StepPlan {
        &self.plan
    }

    fn loss(&mut self, s: &StepData) -> anyhow::Result<Loss> {
        let out = &s.outputs[0];
        if out.heads.is_empty() {
            anyhow::bail!("byot: the network returned no auxiliary heads");
        }
        let c = &self.cfg;
        let (z, f) = (&out.logits, &out.features);
        let t = c.temperature;
        let target = (z.detach() / t).softmax(1, Kind::Float);
        let f_deep = f.detach();
        let mut ce = cross_entropy(z, s.labels);
        let mut kd: Option<Tensor> = None;
        let mut hint: Option<Tensor> = None;
        let add = |acc: &mut Option<Tensor>, x: Tensor| {
            *acc = Some(match acc.take() {
                Some(a) => a + x,
                None => x,
            })
        };
        for (zi, fi) in &out.heads {
            // Out of place: the running sum stays a fresh tensor.
            ce = &ce + cross_entropy(zi, s.labels);
            let log_q = (zi / t).log_softmax(1, Kind::Float);
            let per_row = match c.kd {
                KdTarget::SoftCe => -(&target * &log_q).sum_dim_intlist(1, false, Kind::Float),
                KdTarget::Kl => {
                    (&target * (target.log() - &log_q)).sum_dim_intlist(1, false, Kind::Float)
                }
            };
            add(&mut kd, per_row.mean(Kind::Float) * (t * t));
            let d2 = (fi - &f_deep).square();
            add(
                &mut hint,
                match c.hint {
                    Hint::MaskedSum => {
                        let mask = fi.gt(0.0).logical_or(&f_deep.gt(0.0));
                        (d2 * mask.to_kind(Kind::Float)).abs().sum(Kind::Float)
                    }
                    Hint::MseMean => d2.mean(Kind::Float),
                },
            );
        }
        let (kd, hint) = (kd.expect("a head"), hint.expect("a head"));
        Ok(Loss::of_terms(
            vec![ce * (1.0 - c.alpha), kd * c.alpha, hint * c.beta],
            z.shallow_clone(),
        ))
    }
}
