//! CS-KD, class-wise self-knowledge distillation (Yun et al., CVPR 2020;
//! official code alinlab/cs-kd, docs/method.md §9):
//!
//! L = CE(z(x), y) + λ · T² · KL(softmax(z(x′)/T) ‖ softmax(z(x)/T))
//!
//! where x′ is another training sample of x's class (the Partner stream,
//! `data::partner`), forwarded without gradient. The KL is summed over
//! classes and averaged over the batch (the official `KLDivLoss(reduction =
//! "sum") · T² / N`). The official `train.py` forwards the anchors, then the
//! partners in a second forward under `no_grad`, both in training mode: each
//! batch normalises with its own statistics and both update the running
//! statistics (`forward = "separate"`, the default). `forward = "joint"`
//! sends anchors and partners through one forward (joint batch statistics,
//! the partners' logits detached) [choice].
use crate::method::arms::{ArmConfig, Forward};
use crate::method::loss::{cross_entropy, kl_div, KlReduction};
use crate::method::plan::{Images, Pass, StepPlan, ViewSpec};
use crate::method::step::{Loss, Method, StepData};
use serde::{Deserialize, Serialize};

/// The constants of CS-KD (official CIFAR defaults, `train.py`: `--temp 4`,
/// `--lamda 1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsKdConfig {
    /// T, of both sides of the KL.
    pub temperature: f64,
    /// λ, the weight of the class-wise term.
    pub lambda: f64,
}

impl Default for CsKdConfig {
    fn default() -> Self {
        CsKdConfig {
            temperature: 4.0,
            lambda: 1.0,
        }
    }
}

impl CsKdConfig {
    /// (field, problem) of the first invalid constant.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(("temperature", "expected a positive value".into()));
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(("lambda", "expected a finite value >= 0".into()));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!("T {}  lambda {}", self.temperature, self.lambda)
    }
}

/// Anchors (view 0) and their partners (view 1), in one pass or two.
pub fn plan(arm: &ArmConfig) -> StepPlan {
    let d = |v: usize| arm.distortions[v];
    let views = vec![
        ViewSpec {
            images: Images::Samples,
            distortion: d(0),
        },
        ViewSpec {
            images: Images::SameClass,
            distortion: d(1),
        },
    ];
    let passes = match arm.forward {
        Forward::Separate => vec![
            Pass {
                first: 0,
                count: 1,
                grad: true,
            },
            Pass {
                first: 1,
                count: 1,
                grad: false,
            },
        ],
        Forward::Joint => vec![Pass {
            first: 0,
            count: 2,
            grad: true,
        }],
    };
    StepPlan {
        views,
        passes,
        terms: vec!["ce", "kl"],
        sample_memory: false,
        teacher: false,
        heads: false,
    }
}

pub struct CsKd {
    cfg: CsKdConfig,
    plan: StepPlan,
}

impl CsKd {
    pub fn new(arm: &ArmConfig, cfg: &CsKdConfig) -> Self {
        CsKd {
            cfg: cfg.clone(),
            plan: plan(arm),
        }
    }
}

impl Method for CsKd {
    fn plan(&self) -> &StepPlan {
        &self.plan
    }

    fn loss(&mut self, s: &StepData) -> anyhow::Result<Loss> {
        let (z, _) = s.view(&self.plan, 0);
        let (zp, _) = s.view(&self.plan, 1);
        let ce = cross_entropy(&z, s.labels);
        let t = self.cfg.temperature;
        let kl = kl_div(&z, &zp.detach(), t, KlReduction::BatchMean) * (t * t * self.cfg.lambda);
        Ok(Loss::of_terms(vec![ce, kl], z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::arms;
    use crate::method::loss::LossConfig;
    use crate::method::step::Outputs;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn separate_and_joint_plans() {
        let mut a = arms::builtin("cs_kd", &LossConfig::default()).unwrap();
        assert_eq!(a.forward, Forward::Separate, "the official default");
        let p = plan(&a);
        assert_eq!(p.check(), Ok(()));
        assert!(p.needs_partners());
        assert!(p.passes[0].grad && !p.passes[1].grad);
        a.forward = Forward::Joint;
        assert_eq!(plan(&a).passes.len(), 1);
    }

    #[test]
    fn the_partner_side_gets_no_gradient_and_the_terms_add_up() {
        let a = arms::builtin("cs_kd", &LossConfig::default()).unwrap();
        let mut m = CsKd::new(&a, &CsKdConfig::default());
        let z = Tensor::randn([4, 6], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let zp = Tensor::randn([4, 6], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let f = Tensor::zeros([4, 2], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 3]);
        let outs = [
            Outputs {
                logits: z.shallow_clone(),
                features: f.shallow_clone(),
                heads: Vec::new(),
            },
            Outputs {
                logits: zp.shallow_clone(),
                features: f,
                heads: Vec::new(),
            },
        ];
        let l = m
            .loss(&StepData {
                outputs: &outs,
                labels: &y,
                samples: &y,
                len: 4,
                epoch: 0,
                teacher: None,
            })
            .unwrap();
        let v = Vec::<f32>::try_from(l.stacked(&[])).unwrap();
        assert!((v[0] - v[1] - v[2]).abs() < 1e-6 && v[2] > 0.0);
        l.total.backward();
        assert!(z.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
        assert!(!zp.grad().defined(), "the partners are a fixed target");
        assert_eq!(
            CsKdConfig {
                temperature: 0.0,
                ..Default::default()
            }
            .check()
            .unwrap_err()
            .0,
            "temperature"
        );
    }
}
