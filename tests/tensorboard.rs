//! The event files of every run, read by the real TensorBoard (its
//! `EventAccumulator`, tests/python/tb_scalars.py): every scalar of the
//! history is there with the record's value, and a run killed (SIGKILL) at
//! several points and resumed reads back as one series with each step once,
//! the same series as the run that never stopped.
//!
//! Needs `.venv/bin/python` with `tensorboard` (ci/setup.sh --test installs
//! it); without it the tests print "SKIP: ..." and pass.
mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const RUN: &str = "resnet8w4__ddgsd__s0";
const EPOCHS: usize = 5;

/// tag -> [(step, value)] of one run, as TensorBoard reads it.
type Series = BTreeMap<String, Vec<(i64, f64)>>;

fn suite(p: &Project) {
    // 5 steps per epoch (160 training samples after the holdout), 5 epochs.
    p.write(
        "suites/tb.toml",
        &tiny_suite(
            "tb",
            &["ddgsd"],
            &[0],
            EPOCHS as u32,
            "checkpoint_every = 1",
        )
        .replace("test = 64\n", "test = 64\nholdout = 32\n"),
    );
}

/// The scalars of `<out>/tb/<RUN>`, or None (SKIP) without tensorboard.
fn read(p: &Project, out: &str) -> Option<Series> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = root.join(".venv/bin/python");
    if !py.exists() {
        println!("SKIP: no .venv/bin/python (run ci/setup.sh --test)");
        return None;
    }
    let o = std::process::Command::new(&py)
        .arg(root.join("tests/python/tb_scalars.py"))
        .arg(p.path().join(out).join("tb"))
        .arg(RUN)
        .output()
        .unwrap();
    if o.status.code() == Some(3) {
        println!("SKIP: tensorboard is not installed in .venv (ci/setup.sh --test installs it)");
        return None;
    }
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut s = Series::new();
    for (tag, pts) in v[RUN].as_object().unwrap() {
        let pts = pts
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        s.insert(tag.clone(), pts);
    }
    Some(s)
}

/// TensorBoard's tag of a history field (README "TensorBoard").
fn tag(field: &str) -> String {
    for p in ["test", "val", "train"] {
        if let Some(r) = field.strip_prefix(&format!("{p}_")) {
            return format!("{p}/{r}");
        }
    }
    format!("train/{field}")
}

/// Every history value is a scalar at step = epoch, equal to the record's
/// value in f32 (simple_value's precision); every step once.
fn matches_history(s: &Series, record: &Value) {
    let hist = record["history"].as_array().unwrap();
    assert_eq!(hist.len(), EPOCHS);
    let mut fields = 0;
    for (k, _) in hist[0].as_object().unwrap() {
        if k == "epoch" || k == "seconds" {
            continue;
        }
        fields += 1;
        let t = tag(k);
        let pts = s
            .get(&t)
            .unwrap_or_else(|| panic!("no scalar {t}: {:?}", s.keys()));
        let steps: Vec<i64> = pts.iter().map(|p| p.0).collect();
        assert_eq!(steps, (1..=EPOCHS as i64).collect::<Vec<_>>(), "{t}");
        for (h, (step, v)) in hist.iter().zip(pts) {
            let want = h[k].as_f64().unwrap() as f32 as f64;
            assert_eq!(*v, want, "{t} at epoch {step}");
        }
    }
    // lr, loss, ce, kl, mmd, train/test top-1, test top-5, NLL, ECE, and
    // the validation top-1, top-5, NLL and ECE of the holdout.
    assert_eq!(fields, 14, "{:?}", hist[0]);
    for t in ["val/top1", "val/nll", "val/ece", "test/nll", "test/ece"] {
        assert!(s.contains_key(t), "{t}");
    }
    let ips = &s["train/images_per_second"];
    assert_eq!(ips.len(), EPOCHS);
    assert!(ips.iter().all(|p| p.1 > 0.0));
    // The running loss per read-back: strictly increasing global steps, and
    // at each epoch's last step the epoch's mean loss.
    let run = &s["step/loss"];
    assert!(run.windows(2).all(|w| w[0].0 < w[1].0), "{run:?}");
    for (e, h) in hist.iter().enumerate() {
        let last = ((e + 1) * 5) as i64;
        let p = run
            .iter()
            .find(|p| p.0 == last)
            .expect("a read-back at the epoch's end");
        assert_eq!(p.1, h["loss"].as_f64().unwrap() as f32 as f64);
    }
}

#[test]
fn tensorboard_reads_every_scalar_of_the_history() {
    let p = Project::new();
    suite(&p);
    let o = p.run(&["run", "suites/tb.toml", "--no-check", "--out", "a"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rec = p.records("a", "tb").remove(0);
    let Some(s) = read(&p, "a") else { return };
    matches_history(&s, &rec);
    // `tensorboard = false` writes none.
    p.write(
        "suites/tb.toml",
        &std::fs::read_to_string(p.path().join("suites/tb.toml"))
            .unwrap()
            .replace(
                "checkpoint_every = 1",
                "checkpoint_every = 1\ntensorboard = false",
            ),
    );
    let o = p.run(&["run", "suites/tb.toml", "--no-check", "--out", "off"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let files: Vec<_> = std::fs::read_dir(p.path().join("off/tb").join(RUN))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("tfevents"))
        .collect();
    assert!(files.is_empty(), "{files:?}");
}

#[test]
fn a_run_killed_and_resumed_reads_back_as_one_series() {
    let p = Project::new();
    suite(&p);
    let o = p.run(&["run", "suites/tb.toml", "--no-check", "--out", "straight"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let want_rec = p.records("straight", "tb").remove(0);
    let Some(want) = read(&p, "straight") else {
        return;
    };
    let state = p
        .path()
        .join("killed/tb")
        .join(RUN)
        .join("checkpoint/state.json");
    // Kill just after the first checkpoint, then twice more at later points
    // of the resumed processes, then let it finish.
    for (i, ms) in [150u64, 400, 250].iter().enumerate() {
        let mut child = p
            .cmd(&["run", "suites/tb.toml", "--no-check", "--out", "killed"])
            .spawn()
            .unwrap();
        if i == 0 {
            wait_for("a checkpoint", Duration::from_secs(120), || state.exists());
        }
        std::thread::sleep(Duration::from_millis(*ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(
        !p.path()
            .join("killed/tb")
            .join(RUN)
            .join("record.json")
            .exists(),
        "finished before the last kill; make the run longer"
    );
    let o = p.run(&["run", "suites/tb.toml", "--no-check", "--out", "killed"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rec = p.records("killed", "tb").remove(0);
    assert_eq!(rec["checkpoint_sha256"], want_rec["checkpoint_sha256"]);
    let got = read(&p, "killed").unwrap();
    matches_history(&got, &rec);
    // The same series as the straight run: same tags, steps and values
    // (images/s is a timing).
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (t, pts) in &want {
        if t == "train/images_per_second" {
            continue;
        }
        assert_eq!(&got[t], pts, "{t}");
    }
    let files: Vec<_> = std::fs::read_dir(p.path().join("killed/tb").join(RUN))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tfevents"))
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one event file after the resumes: {files:?}"
    );
}
