//! PS-KD, progressive self-knowledge distillation (Kim et al., ICCV 2021;
//! official code lgcnsai/PS-KD-Pytorch, docs/method.md §10):
//!
//! target = (1 − α_t) · onehot(y) + α_t · p_{t−1}(x),   α_t = α_T · (t + 1) / E
//! L = Σ_c −target_c · log softmax(z)_c, averaged over the batch
//!
//! with t the 0-based epoch, E the run's epochs and p_{t−1}(x) the softmax
//! the network gave the same training sample (the same index) in the
//! previous epoch, kept in a memory of train size × classes that is
//! checkpoint state. In the first epoch the official code writes the
//! one-hot labels into the memory before reading it, so the target is the
//! one-hot label; here the one-hot label stands in for the memory row in
//! the same arithmetic. After each step the memory rows of the step's
//! samples take the softmax of this step's logits (training mode, before
//! the update, as `main.py` computes `softmax_output` from the same
//! forward). The loss is written as `Custom_CrossEntropy_PSKD`:
//! `(−target · log_softmax(z)).mean(0).sum()`.
use crate::method::arms::ArmConfig;
use crate::method::plan::StepPlan;
use crate::method::step::{Loss, Method, StepData};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The name of the memory tensor in the checkpoint.
pub const MEMORY: &str = "ps_kd.memory";

/// The constants of PS-KD (official default `--alpha_T 0.8`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsKdConfig {
    /// α_T, the weight of the past predictions in the last epoch.
    #[serde(rename = "alpha_T")]
    pub alpha_final: f64,
}

impl Default for PsKdConfig {
    fn default() -> Self {
        PsKdConfig { alpha_final: 0.8 }
    }
}

impl PsKdConfig {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.alpha_final) {
            return Err(("alpha_T", "expected a value in [0, 1]".into()));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!("alpha_T {}", self.alpha_final)
    }

    /// α_t of epoch `epoch` (0-based) of `epochs` (the official
    /// `max(0, alpha_T * (epoch + 1) / end_epoch)`).
    pub fn alpha(&self, epoch: u32, epochs: u32) -> f64 {
        (self.alpha_final * (f64::from(epoch) + 1.0) / f64::from(epochs.max(1))).max(0.0)
    }
}

/// One view, one pass: the baseline's step, and the memory of every
/// sample's last prediction.
pub fn plan(arm: &ArmConfig) -> StepPlan {
    StepPlan {
        sample_memory: true,
        teacher: false,
        heads: false,
        ..StepPlan::one_view(arm.distortions[0], &["soft_ce"])
    }
}

pub struct PsKd {
    cfg: PsKdConfig,
    plan: StepPlan,
    epochs: u32,
    classes: i64,
    /// `[train size, classes]` f32 on the training device: the last softmax
    /// of every training sample.
    memory: Tensor,
    alpha: f64,
}

impl PsKd {
    pub fn new(
        arm: &ArmConfig,
        cfg: &PsKdConfig,
        train_len: usize,
        classes: i64,
        epochs: u32,
        device: Device,
    ) -> Self {
        PsKd {
            cfg: cfg.clone(),
            plan: plan(arm),
            epochs,
            classes,
            memory: Tensor::zeros([train_len as i64, classes], (Kind::Float, device)),
            alpha: cfg.alpha(0, epochs),
        }
    }
}

/// The official soft-target cross-entropy: `(−target · log_softmax(z))`
/// averaged over the batch (dim 0), summed over the classes.
pub fn soft_target_ce(logits: &Tensor, target: &Tensor) -> Tensor {
    (-target * logits.log_softmax(1, Kind::Float))
        .mean_dim(0, false, Kind::Float)
        .sum(Kind::Float)
}

impl Method for PsKd {
    fn plan(&self) -> &StepPlan {
        &self.plan
    }

    fn begin_epoch(&mut self, epoch: u32) {
        self.alpha = self.cfg.alpha(epoch, self.epochs);
    }

    fn loss(&mut self, s: &StepData) -> anyhow::Result<Loss> {
        let (z, _) = s.view(&self.plan, 0);
        let onehot = s.labels.one_hot(self.classes).to_kind(Kind::Float);
        let past = if s.epoch == 0 {
            onehot.shallow_clone()
        } else {
            self.memory.index_select(0, s.samples)
        };
        let a = self.alpha;
        let target = &onehot * (1.0 - a) + past * a;
        let loss = soft_target_ce(&z, &target);
        tch::no_grad(|| {
            let p = z.detach().softmax(1, Kind::Float);
            let _ = self.memory.index_copy_(0, s.samples, &p);
        });
        Ok(Loss::of_terms(vec![loss], z))
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        vec![(MEMORY.to_string(), self.memory.shallow_clone())]
    }

    fn load_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), String> {
        let [(name, t)] = tensors else {
            return Err(format!(
                "expected the one tensor `{MEMORY}`, found {}",
                tensors.len()
            ));
        };
        if name != MEMORY || t.size() != self.memory.size() || t.kind() != Kind::Float {
            return Err(format!(
                "expected `{MEMORY}` f32 {:?}, found `{name}` {:?} {:?}",
                self.memory.size(),
                t.kind(),
                t.size()
            ));
        }
        tch::no_grad(|| self.memory.copy_(t));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::arms;
    use crate::method::loss::LossConfig;
    use crate::method::step::Outputs;

    fn method(alpha: f64) -> PsKd {
        let a = arms::builtin("ps_kd", &LossConfig::default()).unwrap();
        PsKd::new(&a, &PsKdConfig { alpha_final: alpha }, 6, 3, 4, Device::Cpu)
    }

    fn step(m: &mut PsKd, z: &Tensor, samples: &[i64], labels: &[i64], epoch: u32) -> f64 {
        let y = Tensor::from_slice(labels);
        let idx = Tensor::from_slice(samples);
        let outs = [Outputs {
            logits: z.shallow_clone(),
            features: z.zeros_like(),
            heads: Vec::new(),
        }];
        m.begin_epoch(epoch);
        let l = m
            .loss(&StepData {
                outputs: &outs,
                labels: &y,
                samples: &idx,
                len: samples.len(),
                epoch,
                teacher: None,
            })
            .unwrap();
        l.total.double_value(&[])
    }

    #[test]
    fn alpha_ramps_to_alpha_t_in_the_last_epoch() {
        let c = PsKdConfig::default();
        assert!((c.alpha(0, 300) - 0.8 / 300.0).abs() < 1e-15);
        assert!((c.alpha(299, 300) - 0.8).abs() < 1e-15);
        assert!(PsKdConfig { alpha_final: 1.5 }.check().is_err());
    }

    #[test]
    fn the_memory_holds_the_last_softmax_and_softens_the_next_epoch() {
        let mut m = method(0.8);
        let z = Tensor::from_slice(&[2.0f32, 0.0, -1.0, 0.5, 0.5, 3.0]).view([2, 3]);
        // Epoch 0: the target is the one-hot label (plain CE).
        let l0 = step(&mut m, &z, &[4, 1], &[0, 2], 0);
        let ce = z.cross_entropy_for_logits(&Tensor::from_slice(&[0i64, 2]));
        assert!((l0 - ce.double_value(&[])).abs() < 1e-6);
        let mem = m.state().remove(0).1;
        assert!(mem
            .get(4)
            .allclose(&z.get(0).softmax(0, Kind::Float), 0.0, 0.0, false));
        assert_eq!(mem.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
        // Epoch 1 of 4: alpha = 0.8 * 2 / 4 = 0.4 on the stored softmax.
        let z1 = Tensor::from_slice(&[0.0f32, 1.0, 0.0]).view([1, 3]);
        let l1 = step(&mut m, &z1, &[4], &[0], 1);
        let p = z.get(0).softmax(0, Kind::Float);
        let target = Tensor::from_slice(&[1.0f32, 0.0, 0.0]) * 0.6 + p * 0.4;
        let want = (-target * z1.get(0).log_softmax(0, Kind::Float))
            .sum(Kind::Float)
            .double_value(&[]);
        assert!((l1 - want).abs() < 1e-6, "{l1} vs {want}");
        // The state round-trips, and a foreign state is refused.
        let st = m.state();
        let mut other = method(0.8);
        other.load_state(&st).unwrap();
        assert!(other.memory.equal(&m.memory));
        assert!(other.load_state(&[]).is_err());
        let wrong = vec![(
            MEMORY.to_string(),
            Tensor::zeros([5, 3], (Kind::Float, Device::Cpu)),
        )];
        assert!(other.load_state(&wrong).unwrap_err().contains("[6, 3]"));
    }
}
