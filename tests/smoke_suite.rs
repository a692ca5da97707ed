//! The shipped smoke suite, end to end, as the README's first quick-start
//! command runs it: every band and claim of expected/smoke.toml must hold
//! (and, on the reference platform, every checkpoint pin must match).
mod common;
use common::*;

#[test]
fn the_smoke_suite_passes_its_expected_file() {
    let out = tempfile::tempdir().unwrap();
    let (c, so, se) = run_shipped_suite("smoke", out.path());
    assert_eq!(c, 0, "stdout:\n{so}\nstderr:\n{se}");
    assert!(so.contains("Verdict: PASS"), "{so}");
    assert!(so.contains("| resnet8w8 |"), "{so}");
    for arm in [
        "baseline",
        "two_branch",
        "two_branch_kl",
        "two_branch_mmd",
        "ddgsd",
        "baseline_2x",
    ] {
        assert!(so.contains(arm), "{arm} missing from the table");
    }
    // Progress went to stderr: run i/N, epochs, loss, ETA.
    assert!(
        se.contains("[run 12/12]") && se.contains("epoch 8/8") && se.contains("ETA"),
        "{se}"
    );
    if so.contains("0 runs not pinned for this platform") {
        assert!(so.contains("Checkpoint pins: 12 match"), "{so}");
    } else {
        println!("note: not the reference platform of expected/smoke.toml; pins not compared");
    }
    assert!(out.path().join("smoke/table.md").exists());
}
