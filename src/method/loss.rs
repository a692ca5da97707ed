//! The loss of one training step, as a set of weighted terms (docs/method.md §2):
//!
//! L = w_ce (CE(z_a, y) + CE(z_b, y))
//!   + lambda [KL(p_b || p_a) + KL(p_a || p_b)]  (x T^2 if `t2_factor`)
//!   + mu D(h_a, h_b)
//!
//! with p = softmax(z / T), KL from log_softmax as sum_c p_t (log p_t - log p_s),
//! the target side detached when `stop_gradient` (KL(p_b||p_a) then sends
//! gradient into branch a only), each CE and KL term a per-sample sum over
//! classes then a mean over the batch (or, `kl_reduction = "element_mean"`,
//! a mean over batch and classes), and D the feature discrepancy `mmd`.
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// The feature-discrepancy term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MmdKind {
    /// MMD^2 with k(x, y) = x.y: `|| mean_i h_a[i] - mean_i h_b[i] ||^2`.
    Linear,
    /// Biased MMD^2 with k = sum over bandwidths s of exp(-||x-y||^2 / (2 s^2)).
    Rbf,
    /// (mean of all h_a - mean of all h_b)^2: Self-KD-Lib's "MMD".
    ScalarMean,
    /// Mean squared difference of the logits: ddgsd-pytorch's stand-in.
    MseLogits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlReduction {
    /// Sum over classes, mean over the batch (KL's definition).
    BatchMean,
    /// Mean over batch and classes (KL divided by the class count).
    ElementMean,
}

/// Every constant of the loss, resolved (no defaults left).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    pub ce_weight: f64,
    /// lambda; 0 switches the KL terms off.
    pub kl_weight: f64,
    /// mu; 0 switches the feature term off.
    pub mmd_weight: f64,
    pub temperature: f64,
    pub t2_factor: bool,
    pub stop_gradient: bool,
    pub kl_reduction: KlReduction,
    pub mmd: MmdKind,
    /// Bandwidths of the `rbf` kernel.
    pub rbf_bandwidths: Vec<f64>,
}

impl Default for LossConfig {
    /// docs/method.md §2: lambda = 1, mu = 5e-4, T = 1 without T^2, stop-gradient
    /// on the KL target, batch-mean KL, linear-kernel MMD.
    fn default() -> Self {
        LossConfig {
            ce_weight: 1.0,
            kl_weight: 1.0,
            mmd_weight: 5e-4,
            temperature: 1.0,
            t2_factor: false,
            stop_gradient: true,
            kl_reduction: KlReduction::BatchMean,
            mmd: MmdKind::Linear,
            rbf_bandwidths: vec![1.0, 2.0, 4.0, 8.0, 16.0],
        }
    }
}

/// The total (for backward) and each weighted term (for logs), as scalar
/// tensors on the device.
pub struct LossParts {
    pub total: Tensor,
    pub ce: Tensor,
    /// Absent when the arm has no KL term.
    pub kl: Option<Tensor>,
    /// Absent when the arm has no feature term.
    pub mmd: Option<Tensor>,
}

/// CE summed over classes, mean over the batch (PyTorch's cross_entropy).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.cross_entropy_for_logits(labels)
}

/// KL(p_t || p_s) with p = softmax(z / T) from the logits of both sides,
/// reduced as `reduction` says; gradient flows into both sides (detach the
/// target to stop it).
pub fn kl_div(student: &Tensor, target: &Tensor, t: f64, reduction: KlReduction) -> Tensor {
    let log_s = (student / t).log_softmax(-1, Kind::Float);
    let log_t = (target / t).log_softmax(-1, Kind::Float);
    reduce(&(log_t.exp() * (&log_t - &log_s)), reduction)
}

/// A KL's per-element terms (`[B, K]`) reduced: summed over the classes and
/// averaged over the batch, or averaged over both.
pub fn reduce(per_elem: &Tensor, reduction: KlReduction) -> Tensor {
    match reduction {
        KlReduction::BatchMean => per_elem
            .sum_dim_intlist(-1, false, Kind::Float)
            .mean(Kind::Float),
        KlReduction::ElementMean => per_elem.mean(Kind::Float),
    }
}

/// KL(p_t || p_s) with p = softmax(z / T); the target is detached when
/// `stop_gradient`.
pub fn kl(student: &Tensor, target: &Tensor, cfg: &LossConfig) -> Tensor {
    let t = cfg.temperature;
    let target = if cfg.stop_gradient {
        target.detach()
    } else {
        target.shallow_clone()
    };
    let v = kl_div(student, &target, t, cfg.kl_reduction);
    if cfg.t2_factor {
        v * (t * t)
    } else {
        v
    }
}

/// The feature term D(h_a, h_b) (logits for `mse_logits`).
pub fn discrepancy(
    h_a: &Tensor,
    h_b: &Tensor,
    z_a: &Tensor,
    z_b: &Tensor,
    cfg: &LossConfig,
) -> Tensor {
    match cfg.mmd {
        MmdKind::Linear => {
            let d = h_a.mean_dim(0, false, Kind::Float) - h_b.mean_dim(0, false, Kind::Float);
            (&d * &d).sum(Kind::Float)
        }
        MmdKind::ScalarMean => {
            let d = h_a.mean(Kind::Float) - h_b.mean(Kind::Float);
            &d * &d
        }
        MmdKind::MseLogits => z_a.mse_loss(z_b, Reduction::Mean),
        MmdKind::Rbf => {
            let k = |x: &Tensor, y: &Tensor| {
                let d2 = (x.unsqueeze(1) - y.unsqueeze(0)).square().sum_dim_intlist(
                    -1,
                    false,
                    Kind::Float,
                );
                cfg.rbf_bandwidths
                    .iter()
                    .map(|s| (&d2 * (-1.0 / (2.0 * s * s))).exp().mean(Kind::Float))
                    .fold(Tensor::from(0f32).to_device(x.device()), |acc, t| acc + t)
            };
            k(h_a, h_a) + k(h_b, h_b) - k(h_a, h_b) * 2.0
        }
    }
}

/// One-view loss: w_ce CE(z, y).
pub fn single_view(z: &Tensor, y: &Tensor, cfg: &LossConfig) -> LossParts {
    let ce = cross_entropy(z, y) * cfg.ce_weight;
    LossParts {
        total: ce.shallow_clone(),
        ce,
        kl: None,
        mmd: None,
    }
}

/// Two-view loss of docs/method.md §2 with the arm's weights.
pub fn two_view(
    z_a: &Tensor,
    z_b: &Tensor,
    h_a: &Tensor,
    h_b: &Tensor,
    y: &Tensor,
    cfg: &LossConfig,
) -> LossParts {
    let ce = (cross_entropy(z_a, y) + cross_entropy(z_b, y)) * cfg.ce_weight;
    let kl_term =
        (cfg.kl_weight != 0.0).then(|| (kl(z_a, z_b, cfg) + kl(z_b, z_a, cfg)) * cfg.kl_weight);
    let mmd_term =
        (cfg.mmd_weight != 0.0).then(|| discrepancy(h_a, h_b, z_a, z_b, cfg) * cfg.mmd_weight);
    // Out of place: `ce` must keep its own value (`+=` would write into it).
    let mut total = ce.shallow_clone();
    for term in [&kl_term, &mmd_term].into_iter().flatten() {
        total = &total + term;
    }
    LossParts {
        total,
        ce,
        kl: kl_term,
        mmd: mmd_term,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn cfg() -> LossConfig {
        LossConfig {
            ce_weight: 1.0,
            kl_weight: 1.0,
            mmd_weight: 1.0,
            temperature: 1.0,
            t2_factor: false,
            stop_gradient: true,
            kl_reduction: KlReduction::BatchMean,
            mmd: MmdKind::Linear,
            rbf_bandwidths: vec![1.0],
        }
    }

    fn t(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape).to_device(Device::Cpu)
    }

    fn val(x: &Tensor) -> f64 {
        f64::try_from(x).unwrap()
    }

    fn softmax(z: &[f64]) -> Vec<f64> {
        let m = z.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    fn kl_hand(pt: &[f64], ps: &[f64]) -> f64 {
        pt.iter().zip(ps).map(|(t, s)| t * (t.ln() - s.ln())).sum()
    }

    const ZA: [f32; 6] = [1.0, 2.0, 0.5, -1.0, 0.0, 3.0];
    const ZB: [f32; 6] = [0.5, 1.0, 1.5, 0.0, -2.0, 1.0];

    #[test]
    fn cross_entropy_by_hand() {
        let z = t(&ZA, &[2, 3]);
        let y = Tensor::from_slice(&[1i64, 2]);
        let p0 = softmax(&[1.0, 2.0, 0.5]);
        let p1 = softmax(&[-1.0, 0.0, 3.0]);
        let want = -(p0[1].ln() + p1[2].ln()) / 2.0;
        assert!((val(&cross_entropy(&z, &y)) - want).abs() < 1e-6);
    }

    #[test]
    fn kl_by_hand_with_temperature() {
        let za = t(&ZA, &[2, 3]);
        let zb = t(&ZB, &[2, 3]);
        for (temp, t2) in [(1.0, false), (3.0, false), (4.0, true)] {
            let c = LossConfig {
                temperature: temp,
                t2_factor: t2,
                ..cfg()
            };
            let mut want = 0.0;
            for r in 0..2 {
                let a: Vec<f64> = ZA[r * 3..r * 3 + 3]
                    .iter()
                    .map(|&v| f64::from(v) / temp)
                    .collect();
                let b: Vec<f64> = ZB[r * 3..r * 3 + 3]
                    .iter()
                    .map(|&v| f64::from(v) / temp)
                    .collect();
                want += kl_hand(&softmax(&b), &softmax(&a)) / 2.0;
            }
            if t2 {
                want *= temp * temp;
            }
            // kl(student = a, target = b) = KL(p_b || p_a)
            assert!((val(&kl(&za, &zb, &c)) - want).abs() < 1e-6, "T={temp}");
            let em = LossConfig {
                kl_reduction: KlReduction::ElementMean,
                ..c
            };
            assert!((val(&kl(&za, &zb, &em)) - want / 3.0).abs() < 1e-6);
        }
    }

    #[test]
    fn stop_gradient_blocks_the_target_side() {
        let za = t(&ZA, &[2, 3]).set_requires_grad(true);
        let zb = t(&ZB, &[2, 3]).set_requires_grad(true);
        kl(&za, &zb, &cfg()).backward();
        assert!(val(&za.grad().abs().sum(Kind::Float)) > 1e-3);
        assert!(!zb.grad().defined() || val(&zb.grad().abs().sum(Kind::Float)) == 0.0);

        let za = t(&ZA, &[2, 3]).set_requires_grad(true);
        let zb = t(&ZB, &[2, 3]).set_requires_grad(true);
        let c = LossConfig {
            stop_gradient: false,
            ..cfg()
        };
        kl(&za, &zb, &c).backward();
        assert!(val(&zb.grad().abs().sum(Kind::Float)) > 1e-3);
    }

    #[test]
    fn kl_gradient_matches_hand_derivation() {
        // d KL(p_b || p_a) / d z_a = (p_a - p_b) / N  (T = 1, batch mean).
        let za = t(&ZA, &[2, 3]).set_requires_grad(true);
        let zb = t(&ZB, &[2, 3]);
        kl(&za, &zb, &cfg()).backward();
        let g: Vec<f32> = Vec::try_from(za.grad().flatten(0, -1)).unwrap();
        for r in 0..2 {
            let pa = softmax(
                &ZA[r * 3..r * 3 + 3]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect::<Vec<_>>(),
            );
            let pb = softmax(
                &ZB[r * 3..r * 3 + 3]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect::<Vec<_>>(),
            );
            for c in 0..3 {
                assert!((f64::from(g[r * 3 + c]) - (pa[c] - pb[c]) / 2.0).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn discrepancies_by_hand() {
        let ha = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let hb = t(&[0.0, 1.0, 1.0, 1.0], &[2, 2]);
        let z = t(&ZA, &[2, 3]);
        let z2 = t(&ZB, &[2, 3]);
        // means: a = (2, 3), b = (0.5, 1) -> (1.5^2 + 2^2) = 6.25
        assert!((val(&discrepancy(&ha, &hb, &z, &z2, &cfg())) - 6.25).abs() < 1e-6);
        let sm = LossConfig {
            mmd: MmdKind::ScalarMean,
            ..cfg()
        };
        // scalar means 2.5 and 0.75 -> 1.75^2
        assert!((val(&discrepancy(&ha, &hb, &z, &z2, &sm)) - 3.0625).abs() < 1e-6);
        let mse = LossConfig {
            mmd: MmdKind::MseLogits,
            ..cfg()
        };
        let want: f64 = ZA
            .iter()
            .zip(ZB)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            / 6.0;
        assert!((val(&discrepancy(&ha, &hb, &z, &z2, &mse)) - want).abs() < 1e-6);
        // rbf, bandwidth 1: k(x,y) = exp(-|x-y|^2 / 2)
        let rbf = LossConfig {
            mmd: MmdKind::Rbf,
            rbf_bandwidths: vec![1.0],
            ..cfg()
        };
        let pts_a = [[1.0f64, 2.0], [3.0, 4.0]];
        let pts_b = [[0.0f64, 1.0], [1.0, 1.0]];
        let k = |x: &[f64; 2], y: &[f64; 2]| {
            (-((x[0] - y[0]).powi(2) + (x[1] - y[1]).powi(2)) / 2.0).exp()
        };
        let mean_k = |p: &[[f64; 2]; 2], q: &[[f64; 2]; 2]| {
            let mut s = 0.0;
            for x in p {
                for y in q {
                    s += k(x, y);
                }
            }
            s / 4.0
        };
        let want = mean_k(&pts_a, &pts_a) + mean_k(&pts_b, &pts_b) - 2.0 * mean_k(&pts_a, &pts_b);
        assert!((val(&discrepancy(&ha, &hb, &z, &z2, &rbf)) - want).abs() < 1e-5);
    }

    #[test]
    fn two_view_total_is_the_weighted_sum() {
        let za = t(&ZA, &[2, 3]);
        let zb = t(&ZB, &[2, 3]);
        let ha = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let hb = t(&[0.0, 1.0, 1.0, 1.0], &[2, 2]);
        let y = Tensor::from_slice(&[1i64, 2]);
        let c = LossConfig {
            ce_weight: 0.5,
            kl_weight: 2.0,
            mmd_weight: 0.1,
            ..cfg()
        };
        let p = two_view(&za, &zb, &ha, &hb, &y, &c);
        let term = |t: &Option<Tensor>| t.as_ref().map_or(0.0, val);
        let v = [val(&p.total), val(&p.ce), term(&p.kl), term(&p.mmd)];
        let ce = 0.5 * (val(&cross_entropy(&za, &y)) + val(&cross_entropy(&zb, &y)));
        let k = 2.0 * (val(&kl(&za, &zb, &c)) + val(&kl(&zb, &za, &c)));
        let m = 0.1 * 6.25;
        assert!((v[1] - ce).abs() < 1e-6 && (v[2] - k).abs() < 1e-6 && (v[3] - m).abs() < 1e-6);
        assert!((val(&p.total) - (ce + k + m)).abs() < 1e-5);
        let off = LossConfig {
            kl_weight: 0.0,
            mmd_weight: 0.0,
            ..c
        };
        let p = two_view(&za, &zb, &ha, &hb, &y, &off);
        assert!(p.kl.is_none() && p.mmd.is_none());
        assert!((val(&p.total) - ce).abs() < 1e-6);
    }
}
