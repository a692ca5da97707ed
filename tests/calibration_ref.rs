//! NLL and ECE of `train::evaluate` against the official arithmetic: PS-KD's
//! (lgcnsai/PS-KD-Pytorch) softmax, cross-entropy and binned ECE, written in
//! PyTorch/numpy in tests/python/calibration_ref.py, on the same logits
//! (relative tolerance 1e-5 for the NLL, as torchdistill's loss tests; the
//! ECE within 1e-6 points: the same f32 confidences, f64 sums).
//!
//! Needs `.venv/bin/python` with torch and numpy; without them: SKIP.
use ddgsd_bench::model::Network;
use ddgsd_bench::platform::runtime::{MemoryFormat, Precision};
use ddgsd_bench::train::evaluate::Evaluator;
use ddgsd_bench::train::exec::Exec;
use std::path::Path;
use tch::{Device, Tensor};

/// Returns its input as the logits.
struct Identity;
impl Network for Identity {
    fn forward(&self, xs: &Tensor, _train: bool) -> (Tensor, Tensor) {
        (xs.shallow_clone(), xs.shallow_clone())
    }
}

#[test]
fn nll_and_ece_match_ps_kd_arithmetic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = root.join(".venv/bin/python");
    let ok = std::process::Command::new(&py)
        .args(["-c", "import torch, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("SKIP: .venv/bin/python with torch and numpy not found (ci/setup.sh --test)");
        return;
    }
    // 3000 samples, 10 classes; logit scales from 0.1 to 20 so that the
    // confidences cover every bin, some saturating at 1.0.
    let (n, k) = (3000usize, 10usize);
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut unit = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f64 / (1u64 << 24) as f64
    };
    let mut logits = Vec::with_capacity(n * k);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let scale = 0.1 + 20.0 * (i as f64 / n as f64).powi(2);
        let y = (unit() * k as f64) as i64;
        for c in 0..k {
            let bump = if c as i64 == y { 1.5 } else { 0.0 };
            logits.push(((unit() - 0.5 + bump) * scale) as f32);
        }
        labels.push(y);
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.json");
    std::fs::write(
        &input,
        serde_json::json!({ "logits": logits, "labels": labels, "classes": k }).to_string(),
    )
    .unwrap();
    let o = std::process::Command::new(&py)
        .arg(root.join("tests/python/calibration_ref.py"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let z = Tensor::from_slice(&logits).view([n as i64, k as i64]);
    let y = Tensor::from_slice(&labels);
    let exec = Exec::new(Device::Cpu, Precision::Fp32, MemoryFormat::Contiguous);
    for (bins, key) in [(10usize, "ece10"), (15, "ece15")] {
        let e = Evaluator {
            net: &Identity,
            exec: &exec,
            batch: 128,
            bins,
            group: None,
            heads: None,
        };
        let m = e
            .run(n, &|s, l| {
                Ok((
                    z.narrow(0, s as i64, l as i64),
                    y.narrow(0, s as i64, l as i64),
                ))
            })
            .unwrap()
            .metrics;
        let nll = want["nll"].as_f64().unwrap();
        assert!(((m.nll - nll) / nll).abs() < 1e-5, "NLL {} vs {nll}", m.nll);
        let ece = want[key].as_f64().unwrap();
        assert!((m.ece - ece).abs() < 1e-6, "{key}: {} vs {ece}", m.ece);
        assert!((m.top1 - want["top1"].as_f64().unwrap()).abs() < 1e-9);
        assert!(
            ece > 1.0,
            "a miscalibrated set, so the test can fail: {ece}"
        );
    }
}
