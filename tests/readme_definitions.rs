//! The README defines the checkpoint hash and the CIFAR fingerprint with
//! Python snippets that anyone can run; this test runs those very snippets
//! (taken from README.md) and compares them with the binary.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = Command::new(&venv)
        .args(["-c", "import numpy, safetensors, torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Some(venv)
    } else {
        println!("SKIP: .venv/bin/python with numpy, safetensors and torch not found (ci/setup.sh --test installs them)");
        None
    }
}

/// The ```python block of README.md that contains `marker`.
fn readme_snippet(marker: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```python")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let block = blocks
        .iter()
        .find(|b| b.contains(marker))
        .unwrap_or_else(|| panic!("no python block with {marker} in README.md"));
    // Blocks inside list items are indented: strip the common indentation.
    let indent = block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    block
        .lines()
        .map(|l| {
            if l.len() >= indent {
                &l[indent..]
            } else {
                l.trim_start()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_python(py: &Path, dir: &Path, code: &str) -> String {
    let o = Command::new(py)
        .current_dir(dir)
        .args(["-c", code])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn readme_checkpoint_hash_snippet_matches_the_binary() {
    let Some(py) = python() else { return };
    let p = Project::new();
    p.write("suites/rh.toml", &tiny_suite("rh", &["ddgsd"], &[0], 1, ""));
    let o = p.run(&["run", "suites/rh.toml", "--no-check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rec = p.records("results", "rh").remove(0);
    let dir = p
        .path()
        .join("results/rh")
        .join(rec["run_id"].as_str().unwrap());
    let got = run_python(
        &py,
        &dir,
        &readme_snippet("load_file(\"model.safetensors\")"),
    );
    assert_eq!(got, rec["checkpoint_sha256"].as_str().unwrap());
}

#[test]
fn readme_cifar_fingerprint_snippet_matches_the_binary() {
    let Some(py) = python() else { return };
    let p = Project::new();
    let gen = r#"
import numpy as np, pickle, os
os.makedirs("cifar-10-batches-py")
rng = np.random.default_rng(1)
for f, n in [("data_batch_%d" % i, 7) for i in range(1, 6)] + [("test_batch", 5)]:
    d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [int(x) for x in rng.integers(0, 10, n)]}
    pickle.dump(d, open("cifar-10-batches-py/" + f, "wb"), protocol=2)
"#;
    run_python(&py, p.path(), gen);
    let want = run_python(&py, p.path(), &readme_snippet("data_batch_%d"));
    let o = p.run(&["data", "hash", "cifar-10-batches-py"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), want);
}
