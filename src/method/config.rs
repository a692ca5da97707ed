//! The method of an arm and its constants ([`MethodConfig`]), and the one
//! place that turns it into a plan and a running [`Method`]: the trainer,
//! the benchmark and the suite files reach every method through here and
//! name none.
use crate::method::arms::ArmConfig;
use crate::method::byot::{self, Byot, ByotConfig};
use crate::method::cs_kd::{self, CsKd, CsKdConfig};
use crate::method::ddgsd::{self, Ddgsd};
use crate::method::label_smoothing::{self, LabelSmoothing, LabelSmoothingConfig};
use crate::method::loss::LossConfig;
use crate::method::plan::StepPlan;
use crate::method::ps_kd::{self, PsKd, PsKdConfig};
use crate::method::step::Method;
use crate::method::tf_kd_reg::{self, TfKdReg, TfKdRegConfig};
use crate::method::tf_kd_self::{self, TfKdSelf, TfKdSelfConfig};
use serde::{Deserialize, Serialize};
use tch::Device;

/// Every constant of an arm's method, resolved. Serialised as one key named
/// after the method (the DDGSD family's is `loss`, its name before the
/// other methods existed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodConfig {
    /// The DDGSD family: baseline, the ablation arms, DDGSD (§2-§3).
    #[serde(rename = "loss")]
    Ddgsd(LossConfig),
    CsKd(CsKdConfig),
    PsKd(PsKdConfig),
    TfKdReg(TfKdRegConfig),
    LabelSmoothing(LabelSmoothingConfig),
    TfKdSelf(TfKdSelfConfig),
    Byot(ByotConfig),
}

/// What a method may know of its run when it is built.
#[derive(Debug, Clone, Copy)]
pub struct MethodEnv {
    pub classes: i64,
    /// Samples in the training split (PS-KD's memory rows).
    pub train_len: usize,
    /// The run's epochs (PS-KD's α_t ramp).
    pub epochs: u32,
    /// The training device (where a method keeps its state).
    pub device: Device,
}

impl MethodConfig {
    /// The method's name as suite files write it in `[arm.NAME]` errors.
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::Ddgsd(_) => "ddgsd",
            MethodConfig::CsKd(_) => "cs_kd",
            MethodConfig::PsKd(_) => "ps_kd",
            MethodConfig::TfKdReg(_) => "tf_kd_reg",
            MethodConfig::LabelSmoothing(_) => "label_smoothing",
            MethodConfig::TfKdSelf(_) => "tf_kd_self",
            MethodConfig::Byot(_) => "byot",
        }
    }

    /// The constants in one line (`plan`).
    pub fn describe(&self) -> String {
        match self {
            MethodConfig::Ddgsd(l) => {
                format!(
                    "lambda {}  mu {}  T {}",
                    l.kl_weight, l.mmd_weight, l.temperature
                )
            }
            MethodConfig::CsKd(c) => format!("cs_kd  {}", c.describe()),
            MethodConfig::PsKd(c) => format!("ps_kd  {}", c.describe()),
            MethodConfig::TfKdReg(c) => format!("tf_kd_reg  {}", c.describe()),
            MethodConfig::LabelSmoothing(c) => format!("label_smoothing  {}", c.describe()),
            MethodConfig::TfKdSelf(c) => format!("tf_kd_self  {}", c.describe()),
            MethodConfig::Byot(c) => format!("byot  {}", c.describe()),
        }
    }

    /// This method with the fields of `table` (an `[arm.NAME]` section
    /// without the arm's own fields) overriding its constants. An unknown
    /// field or a value out of range is an error naming the field. The
    /// DDGSD family's fields are applied by the suite layer (`[loss]`
    /// semantics), not here.
    pub fn with_fields(
        &self,
        table: toml::Table,
    ) -> Result<MethodConfig, (Option<&'static str>, String)> {
        fn merge<T: Serialize + serde::de::DeserializeOwned>(
            cur: &T,
            table: toml::Table,
        ) -> Result<T, String> {
            let mut t = toml::Table::try_from(cur).map_err(|e| e.to_string())?;
            t.extend(table);
            T::deserialize(toml::Value::Table(t))
                .map_err(|e| e.to_string().trim().replace('\n', " "))
        }
        let whole = |e: String| (None, e);
        let out = match self {
            MethodConfig::Ddgsd(_) => {
                return Err(whole("the DDGSD arms take `[loss]` fields".into()))
            }
            MethodConfig::CsKd(c) => MethodConfig::CsKd(merge(c, table).map_err(whole)?),
            MethodConfig::PsKd(c) => MethodConfig::PsKd(merge(c, table).map_err(whole)?),
            MethodConfig::TfKdReg(c) => MethodConfig::TfKdReg(merge(c, table).map_err(whole)?),
            MethodConfig::LabelSmoothing(c) => {
                MethodConfig::LabelSmoothing(merge(c, table).map_err(whole)?)
            }
            MethodConfig::TfKdSelf(c) => MethodConfig::TfKdSelf(merge(c, table).map_err(whole)?),
            MethodConfig::Byot(c) => MethodConfig::Byot(merge(c, table).map_err(whole)?),
        };
        out.check().map_err(|(f, m)| (Some(f), m))?;
        Ok(out)
    }

    /// (field, problem) of the first constant out of range.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match self {
            MethodConfig::Ddgsd(_) => Ok(()),
            MethodConfig::CsKd(c) => c.check(),
            MethodConfig::PsKd(c) => c.check(),
            MethodConfig::TfKdReg(c) => c.check(),
            MethodConfig::LabelSmoothing(c) => c.check(),
            MethodConfig::TfKdSelf(c) => c.check(),
            MethodConfig::Byot(c) => c.check(),
        }
    }
}

/// The plan of every step of `arm` (a pure function of the arm).
pub fn plan(arm: &ArmConfig) -> StepPlan {
    match &arm.method {
        MethodConfig::Ddgsd(_) => ddgsd::plan(arm),
        MethodConfig::CsKd(_) => cs_kd::plan(arm),
        MethodConfig::PsKd(_) => ps_kd::plan(arm),
        MethodConfig::TfKdReg(_) => tf_kd_reg::plan(arm),
        MethodConfig::LabelSmoothing(_) => label_smoothing::plan(arm),
        MethodConfig::TfKdSelf(_) => tf_kd_self::plan(arm),
        MethodConfig::Byot(_) => byot::plan(arm),
    }
}

/// The running method of a run with arm `arm`.
pub fn build(arm: &ArmConfig, env: &MethodEnv) -> anyhow::Result<Box<dyn Method>> {
    let m: Box<dyn Method> = match &arm.method {
        MethodConfig::Ddgsd(l) => Box::new(Ddgsd::new(arm, l)),
        MethodConfig::CsKd(c) => Box::new(CsKd::new(arm, c)),
        MethodConfig::PsKd(c) => Box::new(PsKd::new(
            arm,
            c,
            env.train_len,
            env.classes,
            env.epochs,
            env.device,
        )),
        MethodConfig::TfKdReg(c) => Box::new(TfKdReg::new(arm, c)),
        MethodConfig::LabelSmoothing(c) => Box::new(LabelSmoothing::new(arm, c)),
        MethodConfig::TfKdSelf(c) => Box::new(TfKdSelf::new(arm, c)),
        MethodConfig::Byot(c) => Box::new(Byot::new(arm, c)),
    };
    m.plan()
        .check()
        .map_err(|e| anyhow::anyhow!("arm `{}`: {e}", arm.name))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::arms::{builtin, builtin_names};

    #[test]
    fn every_builtin_arm_builds_with_a_valid_plan() {
        let env = MethodEnv {
            classes: 10,
            train_len: 20,
            epochs: 3,
            device: Device::Cpu,
        };
        for n in builtin_names() {
            let a = builtin(n, &LossConfig::default()).unwrap();
            let m = build(&a, &env).unwrap();
            assert_eq!(m.plan(), &plan(&a), "{n}");
            assert_eq!(m.plan().views.len(), a.views as usize, "{n}");
            assert_eq!(a.method.check(), Ok(()));
        }
    }

    #[test]
    fn fields_override_the_official_defaults_and_are_checked() {
        let a = builtin("tf_kd_reg", &LossConfig::default()).unwrap();
        let t: toml::Table = toml::from_str("alpha = 0.0\nkl_reduction = \"batch_mean\"").unwrap();
        let MethodConfig::TfKdReg(c) = a.method.with_fields(t).unwrap() else {
            panic!()
        };
        assert_eq!(c.alpha, 0.0);
        assert_eq!(
            c.temperature, 20.0,
            "the other constants keep their defaults"
        );
        let bad = |s: &str| {
            a.method
                .with_fields(toml::from_str(s).unwrap())
                .unwrap_err()
        };
        let (f, m) = bad("mu = 1.0");
        assert!(f.is_none() && m.contains("unknown field `mu`"), "{m}");
        assert_eq!(bad("alpha = 2.0").0, Some("alpha"));
        assert!(bad("kl_reduction = \"sum\"").1.contains("unknown variant"));
        let p = builtin("ps_kd", &LossConfig::default()).unwrap();
        let MethodConfig::PsKd(c) = p
            .method
            .with_fields(toml::from_str("alpha_T = 0.5").unwrap())
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(c.alpha_final, 0.5);
    }
}
