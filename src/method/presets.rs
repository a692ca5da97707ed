//! The third-party presets of docs/method.md §5: what a public
//! re-implementation of DDGSD changes in a two-view DDGSD-family arm.
use crate::data::augment::Distortion;
use crate::method::arms::{ArmConfig, Forward};
use crate::method::config::MethodConfig;
use crate::method::loss::{KlReduction, MmdKind};

pub const PRESETS: [&str; 2] = ["selfkdlib", "youngerous"];

/// Applies a third-party preset to a two-view DDGSD-family arm. Fields
/// that the description leaves open are `[choice]`s, listed in the README.
pub fn apply_preset(arm: &mut ArmConfig, preset: &str) -> Result<(), String> {
    if arm.views != 2 {
        return Err(format!(
            "preset `{preset}` needs a two-view arm, `{}` has one view",
            arm.name
        ));
    }
    let base = arm.base.clone();
    let MethodConfig::Ddgsd(l) = &mut arm.method else {
        return Err(format!(
            "preset `{preset}` applies to the DDGSD arms, `{}` is {base}",
            arm.name
        ));
    };
    let feature_term = base == "ddgsd" || base == "two_branch_mmd";
    match preset {
        // Self-KD-Lib (winycg): T = 4 with T^2, CE weighted 0.25, "MMD" =
        // squared difference of the two scalar feature means, mu = 5e-4,
        // joint forward, both views pad-crop-flip.
        "selfkdlib" => {
            l.ce_weight = 0.25;
            l.temperature = 4.0;
            l.t2_factor = true;
            l.kl_reduction = KlReduction::BatchMean;
            l.mmd = MmdKind::ScalarMean;
            if feature_term {
                l.mmd_weight = 5e-4;
            }
            arm.forward = Forward::Joint;
            arm.distortions = vec![Distortion::CropFlip, Distortion::CropFlip];
        }
        // ddgsd-pytorch (youngerous): separate forward per view, a flip-only
        // and a crop-only view, T = 3 without T^2, KL divided by the class
        // count, MSE between the logits instead of MMD (weight 1).
        "youngerous" => {
            l.ce_weight = 1.0;
            l.temperature = 3.0;
            l.t2_factor = false;
            l.kl_reduction = KlReduction::ElementMean;
            l.mmd = MmdKind::MseLogits;
            if feature_term {
                l.mmd_weight = 1.0;
            }
            arm.forward = Forward::Separate;
            arm.distortions = vec![Distortion::FlipOnly, Distortion::CropOnly];
        }
        other => {
            return Err(format!(
                "unknown preset `{other}`: expected one of {}",
                PRESETS.join(", ")
            ))
        }
    }
    arm.preset = Some(preset.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::arms::builtin;
    use crate::method::loss::LossConfig;

    #[test]
    fn presets_need_two_views_of_a_ddgsd_arm() {
        let mut a = builtin("baseline", &LossConfig::default()).unwrap();
        assert!(apply_preset(&mut a, "selfkdlib").is_err());
        let mut c = builtin("cs_kd", &LossConfig::default()).unwrap();
        assert!(apply_preset(&mut c, "selfkdlib")
            .unwrap_err()
            .contains("DDGSD arms"));
        let mut d = builtin("ddgsd", &LossConfig::default()).unwrap();
        apply_preset(&mut d, "youngerous").unwrap();
        assert_eq!(d.forward, Forward::Separate);
        assert_eq!(
            d.distortions,
            vec![Distortion::FlipOnly, Distortion::CropOnly]
        );
        assert!(apply_preset(&mut d, "other").is_err());
    }
    // Preset losses on fixed tensors against values computed by hand (f64)
    // from docs/method.md §5's descriptions.
    const ZA: [f64; 6] = [1.0, 2.0, 0.5, -1.0, 0.0, 3.0];
    const ZB: [f64; 6] = [0.5, 1.0, 1.5, 0.0, -2.0, 1.0];
    const HA: [f64; 4] = [1.0, 2.0, 3.0, 4.0];
    const HB: [f64; 4] = [0.0, 1.0, 1.0, 1.0];
    const Y: [usize; 2] = [1, 2];

    fn log_softmax(z: &[f64], t: f64) -> Vec<f64> {
        let m = z.iter().cloned().fold(f64::MIN, f64::max) / t;
        let lse = z.iter().map(|v| (v / t - m).exp()).sum::<f64>().ln() + m;
        z.iter().map(|v| v / t - lse).collect()
    }

    fn ce(z: &[f64; 6]) -> f64 {
        (0..2)
            .map(|r| -log_softmax(&z[r * 3..r * 3 + 3], 1.0)[Y[r]])
            .sum::<f64>()
            / 2.0
    }

    /// sum over rows of KL(p_t || p_s) at temperature t, per-row values.
    fn kl_rows(s: &[f64; 6], tg: &[f64; 6], t: f64) -> Vec<f64> {
        (0..2)
            .map(|r| {
                let ls = log_softmax(&s[r * 3..r * 3 + 3], t);
                let lt = log_softmax(&tg[r * 3..r * 3 + 3], t);
                (0..3).map(|c| lt[c].exp() * (lt[c] - ls[c])).sum::<f64>()
            })
            .collect()
    }

    fn preset_total(preset: &str) -> f64 {
        use tch::Tensor;
        let mut arm = builtin("ddgsd", &LossConfig::default()).unwrap();
        apply_preset(&mut arm, preset).unwrap();
        let loss = arm.ddgsd_loss().unwrap();
        let f = |v: &[f64], shape: &[i64]| {
            Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<_>>()).view(shape)
        };
        let y = Tensor::from_slice(&[Y[0] as i64, Y[1] as i64]);
        let p = crate::method::loss::two_view(
            &f(&ZA, &[2, 3]),
            &f(&ZB, &[2, 3]),
            &f(&HA, &[2, 2]),
            &f(&HB, &[2, 2]),
            &y,
            loss,
        );
        f64::try_from(&p.total).unwrap()
    }

    #[test]
    fn selfkdlib_loss_by_hand() {
        // 0.25 (CE_a + CE_b) + T^2 [KL(p_b||p_a) + KL(p_a||p_b)] (T = 4, batch
        // mean) + 5e-4 (mean(h_a) - mean(h_b))^2
        let t = 4.0;
        let kl = (kl_rows(&ZA, &ZB, t).iter().sum::<f64>()
            + kl_rows(&ZB, &ZA, t).iter().sum::<f64>())
            / 2.0;
        let mean_a = HA.iter().sum::<f64>() / 4.0;
        let mean_b = HB.iter().sum::<f64>() / 4.0;
        let want = 0.25 * (ce(&ZA) + ce(&ZB)) + t * t * kl + 5e-4 * (mean_a - mean_b).powi(2);
        let got = preset_total("selfkdlib");
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn youngerous_loss_by_hand() {
        // CE_a + CE_b + [KL(p_b||p_a) + KL(p_a||p_b)] / classes (T = 3, no T^2)
        // + 1.0 * mean((z_a - z_b)^2)
        let t = 3.0;
        let kl = (kl_rows(&ZA, &ZB, t).iter().sum::<f64>()
            + kl_rows(&ZB, &ZA, t).iter().sum::<f64>())
            / 2.0
            / 3.0;
        let mse = ZA.iter().zip(ZB).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / 6.0;
        let want = ce(&ZA) + ce(&ZB) + kl + mse;
        let got = preset_total("youngerous");
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
