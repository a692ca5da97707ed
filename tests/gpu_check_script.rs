//! ci/gpu-check.sh is run on the GPU machine with no chance to debug it
//! there: this test runs the same script on the CPU (DEVICE=cpu, a tiny
//! suite) so a broken script is caught here.
mod common;
use common::*;

#[test]
fn gpu_check_script_runs_on_the_cpu() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIP: python3 not found; ci/gpu-check.sh needs it to read records");
        return;
    }
    let p = Project::new();
    let suite = p.write(
        "suites/gc.toml",
        &tiny_suite(
            "gc",
            &["baseline", "ddgsd"],
            &[0],
            4,
            "checkpoint_every = 1",
        )
        .replace("train = 192", "train = 384"),
    );
    let out = p.path().join("report");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let o = std::process::Command::new("bash")
        .current_dir(&root)
        .arg("ci/gpu-check.sh")
        .arg(bin())
        .env("DEVICE", "cpu")
        .env("SUITE", &suite)
        .env("OUT", &out)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(out.join("gpu-report.md")).unwrap_or_default();
    assert_eq!(code(&o), 0, "{report}\n{}", stderr(&o));
    for check in [
        "env",
        "twice",
        "resume",
        "nondeterministic",
        "bench",
        "targets",
    ] {
        assert!(
            report.contains(&format!("**PASS** {check}:")),
            "{check} did not pass:\n{report}"
        );
    }
    assert!(report.contains("failures: 0"));
}
