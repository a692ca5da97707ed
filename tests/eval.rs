//! `ddgsd-bench eval`: a run's final model (or its last checkpoint) and any
//! model file give the numbers the run's history logged for the same
//! weights (top-1, top-5, NLL, ECE, and the holdout's), and wrong input is
//! refused with one line and exit 2.
mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const RUN: &str = "resnet8w4__ddgsd__s0";

fn eval_json(p: &Project, args: &[&str]) -> Value {
    let mut a = vec!["eval"];
    a.extend_from_slice(args);
    a.push("--json");
    let o = p.run(&a);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// The test (and validation) metrics of `e` against a history entry.
fn same_as_logged(e: &Value, log: &Value) {
    let t = &e["test"]["metrics"];
    for (k, h) in [
        ("top1", "test_top1"),
        ("top5", "test_top5"),
        ("nll", "test_nll"),
        ("ece", "test_ece"),
    ] {
        assert_eq!(t[k], log[h], "test {k}");
    }
    if log.get("val_top1").is_some() {
        let v = &e["validation"]["metrics"];
        for k in ["top1", "top5", "nll", "ece"] {
            assert_eq!(v[k], log[format!("val_{k}")], "validation {k}");
        }
    } else {
        assert!(e["validation"].is_null());
    }
    assert_eq!(e["same_as_history"], true);
    assert_eq!(e["history_epoch"], log["epoch"]);
}

#[test]
fn eval_of_a_finished_run_equals_its_record() {
    let p = Project::new();
    p.write(
        "suites/e.toml",
        &tiny_suite("e", &["ddgsd"], &[0], 3, "")
            .replace("test = 64\n", "test = 64\nholdout = 32\n"),
    );
    let o = p.run(&["run", "suites/e.toml", "--no-check", "--out", "r"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rec = p.records("r", "e").remove(0);
    let last = rec["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["test_nll"], rec["metrics"]["nll_final"]);
    assert_eq!(last["test_ece"], rec["metrics"]["ece_final"]);
    let dir = format!("r/e/{RUN}");
    let e = eval_json(&p, &[&dir]);
    same_as_logged(&e, &last);
    assert_eq!(e["weights"], "final model (epoch 3)");
    assert_eq!(e["test"]["metrics"]["n"], 64);
    assert_eq!(e["validation"]["metrics"]["n"], 32);
    let bins = e["test"]["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 15);
    let counted: u64 = bins.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 64);
    // The table says the same.
    let o = p.run(&["eval", &dir]);
    let out = stdout(&o);
    assert!(out.contains("| validation (holdout) | 32 |"), "{out}");
    assert!(
        out.contains("Same numbers as the run's history at epoch 3"),
        "{out}"
    );
    // Another bin count is another ECE; the rest stays.
    let e10 = eval_json(&p, &[&dir, "--ece-bins", "10"]);
    assert_eq!(e10["test"]["bins"].as_array().unwrap().len(), 10);
    assert_eq!(e10["test"]["metrics"]["top1"], last["test_top1"]);
    assert_eq!(
        e10["same_as_history"], true,
        "ECE not compared at other bins"
    );
}

#[test]
fn eval_of_a_checkpoint_equals_the_history_at_that_epoch() {
    let p = Project::new();
    p.write(
        "suites/c.toml",
        &tiny_suite("c", &["ddgsd"], &[0], 30, "checkpoint_every = 1"),
    );
    let state = p.path().join("k/c").join(RUN).join("checkpoint/state.json");
    let mut child = p
        .cmd(&["run", "suites/c.toml", "--no-check", "--out", "k"])
        .spawn()
        .unwrap();
    wait_for("a checkpoint", Duration::from_secs(120), || state.exists());
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let st: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let epoch = st["epoch"].as_u64().unwrap();
    assert_eq!(
        st["step_in_epoch"], 0,
        "SIGKILL keeps the last epoch-end checkpoint"
    );
    let e = eval_json(&p, &[&format!("k/c/{RUN}")]);
    assert_eq!(e["weights"], format!("checkpoint after epoch {epoch}"));
    same_as_logged(&e, st["history"].as_array().unwrap().last().unwrap());
}

/// A CIFAR-10 binary folder: 5 train files of `per` samples, a test file.
fn cifar10(dir: &Path, per: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let names: Vec<String> = (1..=5)
        .map(|i| format!("data_batch_{i}.bin"))
        .chain(["test_batch.bin".to_string()])
        .collect();
    for (k, name) in names.iter().enumerate() {
        let mut bytes = Vec::new();
        for j in 0..per {
            let label = ((j + k) % 10) as u8;
            bytes.push(label);
            // Brighter in the label's channel band: something to learn.
            bytes.extend((0..3072).map(|x| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (state >> 58) as u8;
                if x / 307 == label as usize {
                    200 + noise
                } else {
                    noise
                }
            }));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn eval_of_a_model_file_on_its_data_equals_the_record() {
    let p = Project::new();
    cifar10(&p.path().join("data/cifar-10-batches-bin"), 40);
    let suite = tiny_suite("f", &["baseline"], &[0], 2, "").replace(
        "name = \"synthetic\"\nclasses = 4\ntrain = 192\ntest = 64\n",
        "name = \"cifar10\"\npath = \"data/cifar-10-batches-bin\"\n",
    );
    p.write("suites/f.toml", &suite);
    let o = p.run(&["run", "suites/f.toml", "--no-check", "--out", "r"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rec = p.records("r", "f").remove(0);
    let last = rec["history"].as_array().unwrap().last().unwrap();
    let model = "r/f/resnet8w4__baseline__s0/model.safetensors";
    for arch in [
        vec!["--arch", "resnet8w4"],
        vec!["--arch", "resnet8", "--width", "4"],
    ] {
        let mut a = vec![model];
        a.extend(arch);
        a.extend(["--data", "data/cifar-10-batches-bin"]);
        let e = eval_json(&p, &a);
        let t = &e["test"]["metrics"];
        assert_eq!(t["n"], 40);
        for (k, h) in [
            ("top1", "test_top1"),
            ("top5", "test_top5"),
            ("nll", "test_nll"),
            ("ece", "test_ece"),
        ] {
            assert_eq!(t[k], last[h], "{k}");
        }
        assert_eq!(e["dataset"]["fingerprint"], rec["dataset"]["fingerprint"]);
        assert!(
            e["same_as_history"].is_null(),
            "a bare model file has no history"
        );
    }
    // Wrong input: one line, exit 2.
    let bad: &[(&[&str], &str)] = &[
        (
            &[model, "--data", "data/cifar-10-batches-bin"],
            "needs --arch",
        ),
        (&[model, "--arch", "resnet8w4"], "needs --data"),
        (
            &[
                model,
                "--arch",
                "resnet9000",
                "--data",
                "data/cifar-10-batches-bin",
            ],
            "resnet9000",
        ),
        (
            &[
                model,
                "--arch",
                "resnet20",
                "--data",
                "data/cifar-10-batches-bin",
            ],
            "missing",
        ),
        (
            &[
                model,
                "--arch",
                "imagenet_resnet18",
                "--data",
                "data/cifar-10-batches-bin",
            ],
            "imagenet inputs",
        ),
        (
            &[
                model,
                "--arch",
                "resnet8w4",
                "--data",
                "data/cifar-10-batches-bin",
                "--classes",
                "5",
            ],
            "--classes 5",
        ),
        (
            &[model, "--arch", "resnet8w4", "--data", "data/nowhere"],
            "data/nowhere",
        ),
        (&["r/f/resnet8w4__baseline__s0", "--batch", "0"], "--batch"),
        (
            &["r/f/resnet8w4__baseline__s0", "--arch", "resnet20"],
            "--arch is for a model file",
        ),
        (&["r/f"], "not a run directory"),
        (&["r/f/none"], "not found"),
    ];
    for (args, needle) in bad {
        let mut a = vec!["eval"];
        a.extend_from_slice(args);
        let o = p.run(&a);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        let line = error_line(&o);
        assert!(line.contains(needle), "{args:?}: {line}");
    }
}
