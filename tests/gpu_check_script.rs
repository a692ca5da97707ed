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
    // tests/cuda.rs's binary, built by cargo beside this one (the newest
    // `cuda-<hash>`), stands for the carried target/release/cuda-tests.
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let cuda_tests = std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("cuda-") && !n.contains('.')
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .expect("cargo builds tests/cuda.rs with the other tests");
    let o = std::process::Command::new("bash")
        .current_dir(&root)
        .arg("ci/gpu-check.sh")
        .arg(bin())
        .env("DEVICE", "cpu")
        .env("SUITE", &suite)
        .env("OUT", &out)
        .env("CUDA_TESTS", &cuda_tests)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(out.join("gpu-report.md")).unwrap_or_default();
    assert_eq!(code(&o), 0, "{report}\n{}", stderr(&o));
    for check in [
        "cuda-tests",
        "env",
        "twice",
        "resume",
        "nondeterministic",
        "bench",
        "methods",
        "targets",
        "dp-group-of-one",
        "dp-two-ranks",
    ] {
        assert!(
            report.contains(&format!("**PASS** {check}:")),
            "{check} did not pass:\n{report}"
        );
    }
    assert!(report.contains("failures: 0"));
    // Without a GPU the carried CUDA tests run, and skip.
    let log = std::fs::read_to_string(out.join("cuda-tests.log")).unwrap();
    assert!(log.contains("SKIP: no CUDA device"), "{log}");
    // Not carried: a SKIP line (not counted as a failure by the report).
    let o = std::process::Command::new("bash")
        .current_dir(&root)
        .args(["ci/cuda-tests.sh"])
        .arg(bin())
        .arg(p.path())
        .env("CUDA_TESTS", p.path().join("absent"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).starts_with("SKIP "), "{}", stdout(&o));
    // A failing test binary: FAIL with the failing test named.
    let fake = p.write(
        "fake-tests",
        "#!/bin/sh\necho 'test cuda_x ... FAILED'\nexit 101\n",
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = std::process::Command::new("bash")
        .current_dir(&root)
        .args(["ci/cuda-tests.sh"])
        .arg(bin())
        .arg(p.path())
        .env("CUDA_TESTS", &fake)
        .output()
        .unwrap();
    assert!(
        stdout(&o).starts_with("FAIL test cuda_x ... FAILED"),
        "{}",
        stdout(&o)
    );
}
