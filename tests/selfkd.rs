//! The self-distillation methods end to end on the real binary:
//! - degenerate settings (PS-KD with α_T = 0, TF-KD-reg with α = 0, label
//!   smoothing with ε = 0, both smoothings) train to exactly the baseline's
//!   checkpoint hash, while the official defaults do not;
//! - every method gives the same hashes and logged values in two processes,
//!   with batches built on the device and on the host, and in bf16;
//! - PS-KD (its memory) and CS-KD (its partners) killed at several points,
//!   or stopped mid-epoch, resume to the straight run's hash and history.
mod common;
use common::*;
use std::time::Duration;

use ddgsd_bench::method::arms::METHODS;

/// The methods and tf_kd_self's teacher.
fn arms() -> Vec<&'static str> {
    METHODS.iter().copied().chain(["baseline"]).collect()
}

fn record(p: &Project, out: &str, suite: &str, run: &str) -> serde_json::Value {
    let f = p.path().join(format!("{out}/{suite}/{run}/record.json"));
    serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap()
}

fn run_ok(p: &Project, suite: &str, out: &str) {
    let o = p.run(&["run", suite, "--no-check", "--out", out]);
    assert_eq!(code(&o), 0, "{suite} -> {out}: {}", stderr(&o));
}

/// Every logged value of every epoch but the seconds.
fn same_history(a: &serde_json::Value, b: &serde_json::Value, what: &str) {
    let (ha, hb) = (
        a["history"].as_array().unwrap(),
        b["history"].as_array().unwrap(),
    );
    assert_eq!(ha.len(), hb.len(), "{what}");
    for (x, y) in ha.iter().zip(hb) {
        let (mut x, mut y) = (x.clone(), y.clone());
        x.as_object_mut().unwrap().remove("seconds");
        y.as_object_mut().unwrap().remove("seconds");
        assert_eq!(x, y, "{what}: epoch {}", x["epoch"]);
    }
}

#[test]
fn degenerate_settings_train_to_the_baseline_hash() {
    let p = Project::new();
    let extra = r#"
[arm.ps_kd_alpha0]
base = "ps_kd"
alpha_T = 0.0

[arm.tf_kd_reg_alpha0]
base = "tf_kd_reg"
alpha = 0.0

[arm.ls_eps0]
base = "label_smoothing"
epsilon = 0.0

[arm.ls_others_eps0]
base = "label_smoothing"
epsilon = 0.0
smoothing = "others"
"#;
    let arms = [
        "baseline",
        "ps_kd_alpha0",
        "tf_kd_reg_alpha0",
        "ls_eps0",
        "ls_others_eps0",
        "ps_kd",
        "tf_kd_reg",
        "label_smoothing",
    ];
    // Two epochs: PS-KD's second reads the memory of the first.
    let mut s = tiny_suite("dg", &arms, &[0], 2, "");
    s.push_str(extra);
    p.write("suites/dg.toml", &s);
    run_ok(&p, "suites/dg.toml", "results");
    let hash = |arm: &str| {
        record(&p, "results", "dg", &format!("resnet8w4__{arm}__s0"))["checkpoint_sha256"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let base = hash("baseline");
    for arm in &arms[1..5] {
        assert_eq!(hash(arm), base, "{arm} must train exactly as the baseline");
    }
    for arm in &arms[5..] {
        assert_ne!(hash(arm), base, "{arm} at its defaults changes the run");
    }
}

#[test]
fn every_method_is_deterministic_across_processes_data_paths_and_in_bf16() {
    let p = Project::new();
    for (name, extra) in [
        ("dev", ""),
        ("host", "data = \"host\""),
        ("bf16", "precision = \"bf16\""),
    ] {
        p.write(
            &format!("suites/{name}.toml"),
            &tiny_suite("d", &arms(), &[3], 2, extra),
        );
    }
    run_ok(&p, "suites/dev.toml", "a");
    run_ok(&p, "suites/dev.toml", "b");
    run_ok(&p, "suites/host.toml", "h");
    run_ok(&p, "suites/bf16.toml", "f1");
    run_ok(&p, "suites/bf16.toml", "f2");
    for m in METHODS {
        let run = format!("resnet8w4__{m}__s3");
        let a = record(&p, "a", "d", &run);
        for other in ["b", "h"] {
            let o = record(&p, other, "d", &run);
            assert_eq!(
                a["checkpoint_sha256"], o["checkpoint_sha256"],
                "{m} vs {other}"
            );
            same_history(&a, &o, &format!("{m} vs {other}"));
        }
        let (f1, f2) = (record(&p, "f1", "d", &run), record(&p, "f2", "d", &run));
        assert_eq!(f1["checkpoint_sha256"], f2["checkpoint_sha256"], "{m} bf16");
        same_history(&f1, &f2, &format!("{m} bf16"));
        assert_ne!(
            f1["checkpoint_sha256"], a["checkpoint_sha256"],
            "{m}: bf16 changed nothing"
        );
        // The method's own terms are logged beside the total.
        let h = &a["history"][1];
        let terms: &[&str] = match m {
            "cs_kd" | "tf_kd_reg" | "tf_kd_self" => &["ce", "kl"],
            "byot" => &["ce", "kd", "hint"],
            _ => &["soft_ce"],
        };
        for t in terms {
            assert!(
                h[*t].as_f64().is_some_and(f64::is_finite),
                "{m}: {t} in {h}"
            );
        }
        assert!(h.get("mmd").is_none(), "{m} logs only its own terms: {h}");
    }
}

fn state(p: &Project, out: &str, run: &str) -> std::path::PathBuf {
    p.path()
        .join(format!("{out}/k/{run}/checkpoint/state.json"))
}

/// Waits for a run's first checkpoint (a loaded machine can take minutes);
/// stops the child before failing, so it does not outlive its directory.
fn first_checkpoint(child: &mut std::process::Child, state: &std::path::Path) {
    if !wait_for_file(state, Duration::from_secs(900)) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no checkpoint at {} after 15 minutes", state.display());
    }
}

fn resume_matches(p: &Project, out: &str, run: &str, want: &serde_json::Value) {
    let o = p.run(&[
        "run",
        "suites/k.toml",
        "--no-check",
        "--resume",
        "--out",
        out,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = record(p, out, "k", run);
    assert_eq!(
        got["checkpoint_sha256"], want["checkpoint_sha256"],
        "{run} in {out}"
    );
    assert_eq!(got["metrics"], want["metrics"], "{run} in {out}");
    same_history(&got, want, run);
}

#[test]
fn ps_kd_and_cs_kd_killed_or_stopped_mid_epoch_resume_to_the_straight_hash() {
    for method in ["ps_kd", "cs_kd"] {
        let p = Project::new();
        // 12 steps per epoch, 4 epochs, a checkpoint every epoch.
        let s = tiny_suite("k", &[method], &[0], 4, "checkpoint_every = 1")
            .replace("train = 192", "train = 384");
        p.write("suites/k.toml", &s);
        let run = format!("resnet8w4__{method}__s0");
        run_ok(&p, "suites/k.toml", "straight");
        let want = record(&p, "straight", "k", &run);
        if method == "ps_kd" {
            // The memory is checkpoint state, beside the weights.
            let st: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(state(&p, "straight", &run)).unwrap(),
            )
            .unwrap();
            let f = st["method_file"].as_str().unwrap();
            assert!(f.starts_with("method-") && st["method_sha256"].as_str().unwrap().len() == 64);
        }

        // SIGKILL just after the first checkpoint, then again later in the
        // resumed process, then resume to the end.
        let out = "killed";
        let mut child = p
            .cmd(&["run", "suites/k.toml", "--no-check", "--out", out])
            .spawn()
            .unwrap();
        first_checkpoint(&mut child, &state(&p, out, &run));
        std::thread::sleep(Duration::from_millis(120));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut child = p
            .cmd(&["run", "suites/k.toml", "--no-check", "--out", out])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        child.kill().unwrap();
        child.wait().unwrap();
        resume_matches(&p, out, &run, &want);

        // SIGINT: the run stops after the current step and checkpoints there,
        // mid-epoch (PS-KD's memory then holds this epoch's rows for the
        // samples seen so far, the partners' epoch is half drawn).
        let mut mid = 0;
        for (i, ms) in [0u64, 150, 300, 450].iter().enumerate() {
            let out = format!("int{i}");
            let mut child = p
                .cmd(&["run", "suites/k.toml", "--no-check", "--out", &out])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            first_checkpoint(&mut child, &state(&p, &out, &run));
            std::thread::sleep(Duration::from_millis(*ms));
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let o = child.wait_with_output().unwrap();
            if code(&o) == 130 {
                let st: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(state(&p, &out, &run)).unwrap())
                        .unwrap();
                if st["step_in_epoch"].as_u64().unwrap() > 0 {
                    mid += 1;
                }
            }
            resume_matches(&p, &out, &run, &want);
        }
        assert!(
            mid > 0,
            "{method}: no stop landed mid-epoch; make the epochs longer"
        );
    }
}
