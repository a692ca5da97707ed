//! The DDGSD family behind the method interface (docs/method.md §2-§3): the
//! six ablation arms and the presets, one or two views of each sample, one
//! joint forward or one per view, and the loss of `loss.rs` with the arm's
//! weights. Its terms are always `ce`, `kl` and `mmd` (0 where the arm has
//! no such term), the names the history has always had.
use crate::method::arms::{ArmConfig, Forward};
use crate::method::loss::{self, LossConfig, LossParts};
use crate::method::plan::{Images, Pass, StepPlan, ViewSpec};
use crate::method::step::{Loss, Method, StepData};

pub const TERMS: [&str; 3] = ["ce", "kl", "mmd"];

/// The plan of a DDGSD-family arm.
pub fn plan(arm: &ArmConfig) -> StepPlan {
    let views = arm
        .distortions
        .iter()
        .take(arm.views as usize)
        .map(|&distortion| ViewSpec {
            images: Images::Samples,
            distortion,
        })
        .collect();
    let one = |first, count| Pass {
        first,
        count,
        grad: true,
    };
    let passes = match (arm.views, arm.forward) {
        (1, _) => vec![one(0, 1)],
        (_, Forward::Joint) => vec![one(0, 2)],
        (_, Forward::Separate) => vec![one(0, 1), one(1, 1)],
    };
    StepPlan {
        views,
        passes,
        terms: TERMS.to_vec(),
        sample_memory: false,
        teacher: false,
        heads: false,
    }
}

pub struct Ddgsd {
    loss: LossConfig,
    plan: StepPlan,
}

impl Ddgsd {
    pub fn new(arm: &ArmConfig, loss: &LossConfig) -> Self {
        Ddgsd {
            loss: loss.clone(),
            plan: plan(arm),
        }
    }
}

/// `[ce, kl, mmd]` with 0 for an absent term (what the logs always held).
fn into_loss(p: LossParts, logits: tch::Tensor) -> Loss {
    let zero = || p.total.detach().zeros_like();
    Loss {
        terms: vec![p.ce, p.kl.unwrap_or_else(zero), p.mmd.unwrap_or_else(zero)],
        total: p.total,
        logits,
    }
}

impl Method for Ddgsd {
    fn plan(&self) -> &StepPlan {
        &self.plan
    }

    fn loss(&mut self, s: &StepData) -> anyhow::Result<Loss> {
        let (za, ha) = s.view(&self.plan, 0);
        Ok(if self.plan.views.len() == 1 {
            into_loss(loss::single_view(&za, s.labels, &self.loss), za)
        } else {
            let (zb, hb) = s.view(&self.plan, 1);
            let parts = loss::two_view(&za, &zb, &ha, &hb, s.labels, &self.loss);
            into_loss(parts, za)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::arms;
    use crate::method::step::Outputs;
    use tch::{Kind, Tensor};

    fn arm(name: &str, forward: Forward) -> ArmConfig {
        let mut a = arms::builtin(name, &LossConfig::default()).unwrap();
        a.forward = forward;
        a
    }

    #[test]
    fn plans_of_the_arms() {
        let p = plan(&arm("baseline", Forward::Joint));
        assert_eq!((p.views.len(), p.passes.len()), (1, 1));
        let p = plan(&arm("ddgsd", Forward::Joint));
        assert_eq!(
            p.passes,
            vec![Pass {
                first: 0,
                count: 2,
                grad: true
            }]
        );
        let p = plan(&arm("ddgsd", Forward::Separate));
        assert_eq!(p.passes.len(), 2);
        for name in arms::BUILTIN_ARMS {
            for f in [Forward::Joint, Forward::Separate] {
                assert_eq!(plan(&arm(name, f)).check(), Ok(()), "{name}");
            }
        }
    }

    #[test]
    fn joint_and_separate_outputs_give_the_same_loss() {
        // The same logits split by the joint pass or given per pass.
        let z = Tensor::randn([8, 5], (Kind::Float, tch::Device::Cpu));
        let h = Tensor::randn([8, 3], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 3]);
        let idx = Tensor::from_slice(&[0i64, 1, 2, 3]);
        let cfg = LossConfig::default();
        let mut joint = Ddgsd::new(&arm("ddgsd", Forward::Joint), &cfg);
        let mut sep = Ddgsd::new(&arm("ddgsd", Forward::Separate), &cfg);
        let one = [Outputs {
            logits: z.shallow_clone(),
            features: h.shallow_clone(),
            heads: Vec::new(),
        }];
        let two = [
            Outputs {
                logits: z.narrow(0, 0, 4),
                features: h.narrow(0, 0, 4),
                heads: Vec::new(),
            },
            Outputs {
                logits: z.narrow(0, 4, 4),
                features: h.narrow(0, 4, 4),
                heads: Vec::new(),
            },
        ];
        let data = |outputs| StepData {
            outputs,
            labels: &y,
            samples: &idx,
            len: 4,
            epoch: 0,
            teacher: None,
        };
        let a = joint.loss(&data(&one)).unwrap();
        let b = sep.loss(&data(&two)).unwrap();
        assert!(a.stacked(&[]).equal(&b.stacked(&[])));
        assert_eq!(a.terms.len(), 3);
        assert!(a.logits.equal(&z.narrow(0, 0, 4)));
    }
}
