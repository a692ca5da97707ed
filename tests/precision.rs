//! `[runtime] precision = "bf16"` and `memory_format = "channels_last"` on
//! the CPU: bf16 runs are deterministic across processes and really run in
//! bf16 (their hash differs from fp32), the platform string names both, and
//! a channels_last checkpoint is stored row-major (its file rehashes to the
//! recorded hash).
mod common;
use common::*;

fn record(p: &Project, dir: &str) -> serde_json::Value {
    let f = p
        .path()
        .join(format!("results/{dir}/q/resnet8w4__ddgsd__s0/record.json"));
    serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap()
}

fn run(p: &Project, name: &str, extra: &str) -> serde_json::Value {
    p.write(
        &format!("suites/{name}.toml"),
        &tiny_suite("q", &["ddgsd"], &[0], 1, extra),
    );
    let out = format!("results/{name}");
    let o = p.run(&[
        "run",
        &format!("suites/{name}.toml"),
        "--no-check",
        "--out",
        &out,
    ]);
    assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
    record(p, name)
}

#[test]
fn bf16_is_deterministic_across_processes_and_differs_from_fp32() {
    let p = Project::new();
    let a = run(&p, "a", "precision = \"bf16\"");
    let b = run(&p, "b", "precision = \"bf16\"");
    let f = run(&p, "f", "");
    assert_eq!(a["checkpoint_sha256"], b["checkpoint_sha256"]);
    for k in HISTORY_VALUES {
        assert_eq!(a["history"][0][k], b["history"][0][k], "{k}");
    }
    assert_ne!(
        a["checkpoint_sha256"], f["checkpoint_sha256"],
        "bf16 changed nothing"
    );
    let plat = a["platform"].as_str().unwrap();
    assert!(plat.contains("/bf16/"), "{plat}");
    assert_eq!(a["env"]["precision"], "bf16");
    assert!(f["platform"].as_str().unwrap().contains("/fp32/"));
}

#[test]
fn channels_last_is_recorded_and_its_checkpoint_is_row_major() {
    let p = Project::new();
    let c = run(&p, "c", "memory_format = \"channels_last\"");
    let plat = c["platform"].as_str().unwrap();
    assert!(plat.contains("/fp32/channels_last/"), "{plat}");
    assert_eq!(c["config"]["runtime"]["memory_format"], "channels_last");
    let model = p
        .path()
        .join("results/c/q/resnet8w4__ddgsd__s0/model.safetensors");
    let o = p.run(&["hash", model.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let h = String::from_utf8_lossy(&o.stdout);
    assert_eq!(h.split_whitespace().next(), c["checkpoint_sha256"].as_str());
    // An unknown value is a one-line error naming the field.
    p.write(
        "suites/bad.toml",
        &tiny_suite("q", &["ddgsd"], &[0], 1, "memory_format = \"nhwc\""),
    );
    let o = p.run(&["run", "suites/bad.toml", "--no-check"]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("runtime.memory_format"),
        "{}",
        error_line(&o)
    );
}
