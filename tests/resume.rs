//! Exact resume: a run killed at any point (SIGKILL mid-epoch or
//! mid-checkpoint-write, SIGINT) and resumed ends with the same checkpoint
//! hash and metrics as the run that never stopped.
mod common;
use common::*;
use std::time::Duration;

const RUN: &str = "resnet8w4__ddgsd__s0";

fn suite(p: &Project) {
    // checkpoint every epoch, 6 steps per epoch, 4 epochs.
    p.write(
        "suites/r.toml",
        &tiny_suite("r", &["ddgsd"], &[0], 4, "checkpoint_every = 1"),
    );
}

fn straight(p: &Project) -> serde_json::Value {
    let o = p.run(&["run", "suites/r.toml", "--no-check", "--out", "straight"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    p.records("straight", "r").remove(0)
}

/// `<out>/r/<RUN>/checkpoint/state.json`: present once a checkpoint is committed.
fn state_path(p: &Project, out: &str) -> std::path::PathBuf {
    p.path()
        .join(out)
        .join("r")
        .join(RUN)
        .join("checkpoint/state.json")
}

fn resume_and_compare(p: &Project, out: &str, want: &serde_json::Value) {
    let o = p.run(&[
        "run",
        "suites/r.toml",
        "--no-check",
        "--resume",
        "--out",
        out,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = p.records(out, "r").remove(0);
    assert_eq!(got["checkpoint_sha256"], want["checkpoint_sha256"]);
    assert_eq!(got["metrics"], want["metrics"]);
    assert_eq!(got["history"].as_array().unwrap().len(), 4);
    for (g, w) in got["history"]
        .as_array()
        .unwrap()
        .iter()
        .zip(want["history"].as_array().unwrap())
    {
        for &k in HISTORY_VALUES.iter().chain(&["lr"]) {
            assert_eq!(g[k], w[k], "epoch {} {k}", w["epoch"]);
        }
    }
}

#[test]
fn sigkill_at_several_points_then_resume_matches_the_straight_run() {
    let p = Project::new();
    suite(&p);
    let want = straight(&p);
    // Kill just after the first checkpoint commit, then at a later random-ish
    // point, then resume to the end.
    let out = "killed";
    let state = state_path(&p, out);
    let mut child = p
        .cmd(&["run", "suites/r.toml", "--no-check", "--out", out])
        .spawn()
        .unwrap();
    wait_for("a checkpoint", Duration::from_secs(120), || state.exists());
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !p.path()
            .join(out)
            .join("r")
            .join(RUN)
            .join("record.json")
            .exists(),
        "run finished before the kill; make it longer"
    );
    // A second kill, a little later in the resumed process.
    let mut child = p
        .cmd(&["run", "suites/r.toml", "--no-check", "--out", out])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(900));
    child.kill().unwrap();
    child.wait().unwrap();
    resume_and_compare(&p, out, &want);
}

#[test]
fn sigkill_during_checkpoint_writes_never_leaves_a_half_checkpoint() {
    // Kill at many short delays: whatever state the directory is in, the
    // resumed run must finish with the straight run's hash.
    let p = Project::new();
    suite(&p);
    let want = straight(&p);
    for (i, ms) in [350u64, 420, 500, 610, 730].iter().enumerate() {
        let out = format!("k{i}");
        let mut child = p
            .cmd(&["run", "suites/r.toml", "--no-check", "--out", &out])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*ms));
        child.kill().unwrap();
        child.wait().unwrap();
        resume_and_compare(&p, &out, &want);
    }
}

#[test]
fn sigint_stops_after_a_checkpoint_and_says_how_to_resume() {
    let p = Project::new();
    suite(&p);
    let want = straight(&p);
    let out = "int";
    let state = state_path(&p, out);
    let child = p
        .cmd(&["run", "suites/r.toml", "--no-check", "--out", out])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("a checkpoint", Duration::from_secs(120), || state.exists());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    if p.path()
        .join(out)
        .join("r")
        .join(RUN)
        .join("record.json")
        .exists()
    {
        panic!("run finished before SIGINT arrived; make it longer: {err}");
    }
    assert_eq!(code(&o), 130, "{err}");
    assert!(
        err.contains("interrupted") && err.contains("Resume with: ddgsd-bench run suites/r.toml"),
        "{err}"
    );
    resume_and_compare(&p, out, &want);
}

#[test]
fn a_corrupt_or_foreign_checkpoint_is_refused() {
    let p = Project::new();
    suite(&p);
    let out = "c";
    let dir = p.path().join(out).join("r").join(RUN);
    let state = dir.join("checkpoint/state.json");
    let mut child = p
        .cmd(&["run", "suites/r.toml", "--no-check", "--out", out])
        .spawn()
        .unwrap();
    wait_for("a checkpoint", Duration::from_secs(120), || state.exists());
    std::thread::sleep(Duration::from_millis(50));
    child.kill().unwrap();
    child.wait().unwrap();
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let model = dir
        .join("checkpoint")
        .join(st["model_file"].as_str().unwrap());
    let mut bytes = std::fs::read(&model).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    std::fs::write(&model, &bytes).unwrap();
    let o = p.run(&["run", "suites/r.toml", "--no-check", "--out", out]);
    assert_eq!(code(&o), 2);
    let e = error_line(&o);
    assert!(
        e.contains(st["model_file"].as_str().unwrap()) && e.contains("corrupt checkpoint"),
        "{e}"
    );
    // A state.json from another config (edited hash) is refused too.
    bytes[n - 3] ^= 0xff;
    std::fs::write(&model, &bytes).unwrap();
    let text = std::fs::read_to_string(&state).unwrap();
    let other = text.replace(st["config_sha256"].as_str().unwrap(), &"0".repeat(64));
    std::fs::write(&state, other).unwrap();
    let o = p.run(&["run", "suites/r.toml", "--no-check", "--out", out]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("checkpoint of another run config"),
        "{}",
        error_line(&o)
    );
    // Garbage state.json.
    std::fs::write(&state, "{ not json").unwrap();
    let o = p.run(&["run", "suites/r.toml", "--no-check", "--out", out]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("state.json: corrupt checkpoint state"),
        "{}",
        error_line(&o)
    );
}
