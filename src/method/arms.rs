//! Arms: a name, the built-in arm or method it starts from, the data side
//! of its step (views, forward grouping, distortions) and its method's
//! constants. The DDGSD ablation arms of docs/method.md §3 and the
//! self-distillation methods of §9-§12 are built in.
//!
//! A DDGSD-family arm is resolved in layers, each overriding the one before:
//! built-in arm → `[loss]` of the suite → `preset` → `[arm.NAME]` fields.
//! The other methods start from their official defaults; `[arm.NAME]`
//! fields override them.
use crate::data::augment::Distortion;
use crate::method::byot::ByotConfig;
use crate::method::config::MethodConfig;
use crate::method::cs_kd::CsKdConfig;
use crate::method::label_smoothing::LabelSmoothingConfig;
use crate::method::loss::LossConfig;
use crate::method::ps_kd::PsKdConfig;
use crate::method::tf_kd_reg::TfKdRegConfig;
use crate::method::tf_kd_self::TfKdSelfConfig;
use serde::{Deserialize, Serialize};

/// The arms of DDGSD's ablation (docs/method.md §3).
pub const BUILTIN_ARMS: [&str; 6] = [
    "baseline",
    "two_branch",
    "two_branch_kl",
    "two_branch_mmd",
    "ddgsd",
    "baseline_2x",
];

/// The other self-distillation methods (docs/method.md §9-§12).
pub const METHODS: [&str; 6] = [
    "cs_kd",
    "ps_kd",
    "tf_kd_reg",
    "label_smoothing",
    "tf_kd_self",
    "byot",
];

/// Every built-in arm name, DDGSD's ablation first.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_ARMS.iter().chain(&METHODS).copied().collect()
}

/// How the views go through the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forward {
    /// One forward over the concatenated views: joint batch-norm statistics.
    Joint,
    /// One forward per view (ddgsd-pytorch; CS-KD's anchors and partners).
    Separate,
}

/// How `baseline_2x` matches the forward images of a two-view arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Double {
    /// Twice the epochs (milestones and warm-up scaled), same batch.
    Steps,
    /// Twice the batch and twice the epochs: as many steps as a two-view
    /// arm, each with 2N distinct images.
    Batch,
}

/// A fully resolved arm: what one training step computes. A DDGSD-family
/// arm serialises exactly as before methods existed (its constants under
/// `loss`), so older records and run directories read back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmConfig {
    pub name: String,
    /// The built-in arm it derives from.
    pub base: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Images per sample of a step: 1 or 2.
    pub views: u8,
    pub forward: Forward,
    /// One entry per view.
    pub distortions: Vec<Distortion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub double: Option<Double>,
    /// The method and its constants.
    #[serde(flatten)]
    pub method: MethodConfig,
}

impl ArmConfig {
    /// The DDGSD family's loss constants (None for the other methods).
    pub fn ddgsd_loss(&self) -> Option<&LossConfig> {
        match &self.method {
            MethodConfig::Ddgsd(l) => Some(l),
            _ => None,
        }
    }
}

/// The built-in arm `base` with the suite's DDGSD loss constants `loss`
/// (its lambda and mu apply only where the arm has that term; the other
/// methods ignore them and take their official defaults).
pub fn builtin(base: &str, loss: &LossConfig) -> Option<ArmConfig> {
    let (views, forward, method) = match base {
        "cs_kd" => (
            2,
            Forward::Separate,
            MethodConfig::CsKd(CsKdConfig::default()),
        ),
        "ps_kd" => (1, Forward::Joint, MethodConfig::PsKd(PsKdConfig::default())),
        "tf_kd_reg" => (
            1,
            Forward::Joint,
            MethodConfig::TfKdReg(TfKdRegConfig::default()),
        ),
        "label_smoothing" => (
            1,
            Forward::Joint,
            MethodConfig::LabelSmoothing(LabelSmoothingConfig::default()),
        ),
        "tf_kd_self" => (
            1,
            Forward::Joint,
            MethodConfig::TfKdSelf(TfKdSelfConfig::default()),
        ),
        "byot" => (1, Forward::Joint, MethodConfig::Byot(ByotConfig::default())),
        _ => {
            let (views, kl, mmd) = match base {
                "baseline" | "baseline_2x" => (1, false, false),
                "two_branch" => (2, false, false),
                "two_branch_kl" => (2, true, false),
                "two_branch_mmd" => (2, false, true),
                "ddgsd" => (2, true, true),
                _ => return None,
            };
            let mut l = loss.clone();
            if !kl {
                l.kl_weight = 0.0;
            }
            if !mmd {
                l.mmd_weight = 0.0;
            }
            (views, Forward::Joint, MethodConfig::Ddgsd(l))
        }
    };
    Some(ArmConfig {
        name: base.to_string(),
        base: base.to_string(),
        preset: None,
        views,
        forward,
        distortions: vec![Distortion::CropFlip; views as usize],
        double: (base == "baseline_2x").then_some(Double::Steps),
        method,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_have_the_terms_of_the_table() {
        let l = LossConfig::default();
        let terms = |n: &str| {
            let a = builtin(n, &l).unwrap();
            let d = a.ddgsd_loss().unwrap();
            (a.views, d.kl_weight > 0.0, d.mmd_weight > 0.0)
        };
        assert_eq!(terms("baseline"), (1, false, false));
        assert_eq!(terms("two_branch"), (2, false, false));
        assert_eq!(terms("two_branch_kl"), (2, true, false));
        assert_eq!(terms("two_branch_mmd"), (2, false, true));
        assert_eq!(terms("ddgsd"), (2, true, true));
        assert_eq!(terms("baseline_2x"), (1, false, false));
        assert_eq!(
            builtin("baseline_2x", &l).unwrap().double,
            Some(Double::Steps)
        );
        assert!(builtin("nope", &l).is_none());
        for m in METHODS {
            let a = builtin(m, &l).unwrap();
            assert!(a.ddgsd_loss().is_none(), "{m}");
            assert_eq!(a.distortions.len(), a.views as usize);
        }
    }

    #[test]
    fn a_ddgsd_arm_serialises_as_before_methods_existed() {
        let a = builtin("ddgsd", &LossConfig::default()).unwrap();
        let v = serde_json::to_value(&a).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            ["base", "distortions", "forward", "loss", "name", "views"]
        );
        assert_eq!(serde_json::from_value::<ArmConfig>(v).unwrap(), a);
        let c = builtin("cs_kd", &LossConfig::default()).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["cs_kd"]["temperature"], 4.0);
        assert_eq!(serde_json::from_value::<ArmConfig>(v.clone()).unwrap(), c);
        let mut two = v;
        two["loss"] = serde_json::to_value(LossConfig::default()).unwrap();
        assert!(
            serde_json::from_value::<ArmConfig>(two).is_err(),
            "one method per arm"
        );
    }
}
