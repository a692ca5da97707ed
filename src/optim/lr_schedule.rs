//! Learning-rate schedules: multi-step decay with an optional warm-up.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmupKind {
    /// A constant `warmup_lr` for `warmup_epochs` (He et al.'s ResNet-110).
    Constant,
    /// Linear from `warmup_lr` to `lr` over `warmup_epochs`, per step.
    Linear,
    /// `lr * (k + 1) / K` at warm-up step k of K (0-based, `warmup_epochs`
    /// epochs of steps): `lr / K` at the first step, `lr` at the last
    /// (Self-KD-Lib's `adjust_lr`; `warmup_lr` is not used).
    Ramp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub lr: f64,
    /// Epochs at which the rate is multiplied by `gamma`.
    pub milestones: Vec<u32>,
    pub gamma: f64,
    pub warmup_epochs: u32,
    pub warmup_lr: f64,
    pub warmup_kind: WarmupKind,
}

impl Schedule {
    /// The rate of step `step` (0-based) of `epoch` (0-based), with
    /// `steps_per_epoch` steps in an epoch.
    pub fn lr(&self, epoch: u32, step: usize, steps_per_epoch: usize) -> f64 {
        if epoch < self.warmup_epochs {
            return match self.warmup_kind {
                WarmupKind::Constant => self.warmup_lr,
                WarmupKind::Linear => {
                    let total = (self.warmup_epochs as usize * steps_per_epoch).max(1) as f64;
                    let done = (epoch as usize * steps_per_epoch + step) as f64;
                    self.warmup_lr + (self.lr - self.warmup_lr) * done / total
                }
                WarmupKind::Ramp => {
                    let total = (self.warmup_epochs as usize * steps_per_epoch).max(1) as f64;
                    let done = (epoch as usize * steps_per_epoch + step) as f64;
                    self.lr * (1.0 + done) / total
                }
            };
        }
        let decays = self.milestones.iter().filter(|&&m| epoch >= m).count() as i32;
        self.lr * self.gamma.powi(decays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched() -> Schedule {
        Schedule {
            lr: 0.1,
            milestones: vec![100, 150],
            gamma: 0.1,
            warmup_epochs: 1,
            warmup_lr: 0.01,
            warmup_kind: WarmupKind::Constant,
        }
    }

    #[test]
    fn multistep_with_constant_warmup() {
        let s = sched();
        assert_eq!(s.lr(0, 5, 10), 0.01);
        assert_eq!(s.lr(1, 0, 10), 0.1);
        assert_eq!(s.lr(99, 0, 10), 0.1);
        assert!((s.lr(100, 0, 10) - 0.01).abs() < 1e-12);
        assert!((s.lr(150, 0, 10) - 0.001).abs() < 1e-12);
        assert!((s.lr(199, 9, 10) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn linear_warmup_ramps_per_step() {
        let s = Schedule {
            warmup_epochs: 2,
            warmup_lr: 0.0,
            warmup_kind: WarmupKind::Linear,
            ..sched()
        };
        assert_eq!(s.lr(0, 0, 10), 0.0);
        assert!((s.lr(1, 0, 10) - 0.05).abs() < 1e-12);
        assert!((s.lr(2, 0, 10) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn ramp_warmup_is_self_kd_libs() {
        // Self-KD-Lib `utils.adjust_lr`: init_lr * (1 + step + epoch *
        // iters) / (warmup_epoch * iters), then the multi-step rate.
        let s = Schedule {
            warmup_epochs: 5,
            warmup_kind: WarmupKind::Ramp,
            milestones: vec![105, 155],
            ..sched()
        };
        let iters = 391;
        for (e, k) in [(0u32, 0usize), (0, 390), (2, 17), (4, 390)] {
            let want = 0.1 * (1 + k + e as usize * iters) as f64 / (5 * iters) as f64;
            assert_eq!(s.lr(e, k, iters), want, "epoch {e} step {k}");
        }
        assert!((s.lr(4, 390, iters) - 0.1).abs() < 1e-15);
        assert_eq!(s.lr(5, 0, iters), 0.1);
        assert!((s.lr(105, 0, iters) - 0.01).abs() < 1e-12);
    }
}
