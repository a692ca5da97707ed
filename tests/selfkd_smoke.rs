//! The shipped self-distillation smoke suite end to end: every band and
//! claim of expected/selfkd-smoke.toml holds (and, on the reference
//! platform, every checkpoint pin matches); the reports render a row per
//! method (paper layout, metrics as columns) and a column per arm
//! (ablation layout) for this mix of arms.
mod common;
use common::*;
use std::path::PathBuf;

#[test]
fn the_selfkd_smoke_suite_passes_its_expected_file_and_reports_a_row_per_method() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let (c, so, se) = run_shipped_suite("selfkd-smoke", out.path());
    assert_eq!(c, 0, "stdout:\n{so}\nstderr:\n{se}");
    assert!(so.contains("Verdict: PASS"), "{so}");
    for arm in SELFKD_ARMS {
        assert!(so.contains(arm), "{arm} missing from the table:\n{so}");
    }
    if so.contains("0 runs not pinned for this platform") {
        assert!(so.contains("Checkpoint pins: 16 match"), "{so}");
    } else {
        println!(
            "note: not the reference platform of expected/selfkd-smoke.toml; pins not compared"
        );
    }
    let dir = out.path().join("selfkd-smoke");
    let report = |args: &[&str]| {
        let o = std::process::Command::new(bin())
            .current_dir(&root)
            .arg("report")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    // The paper layout: a row per method, a column per metric.
    let paper = report(&["--layout", "paper", "--metric", "error,top5"]);
    for arm in SELFKD_ARMS {
        assert!(
            paper.contains(&format!("| resnet8w8 | {arm}")),
            "no row for {arm}:\n{paper}"
        );
    }
    assert!(
        paper.contains("synthetic top-1 error") && paper.contains("synthetic top-5 accuracy"),
        "{paper}"
    );
    // The ablation layout: a column per arm, a Δ for every arm but the baseline.
    let abl = report(&["--format", "csv"]);
    let lines: Vec<&str> = abl.lines().skip(1).collect();
    assert_eq!(lines.len(), SELFKD_ARMS.len(), "{abl}");
    for (l, arm) in lines.iter().zip(SELFKD_ARMS) {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!((f[0], f[2]), ("ablation", arm), "{l}");
        assert_eq!(f[12].is_empty(), arm == "baseline", "Δ of {arm}: {l}");
    }
}
