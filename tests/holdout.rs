//! `[dataset] holdout = N`: N training samples held out (a class-stratified
//! draw of the dataset seed), recorded with their ids and the fingerprints
//! of both parts, evaluated every epoch; the best epoch is chosen on them
//! and the reports say so.
mod common;
use common::*;
use ddgsd_bench::data::synthetic::{generate, SyntheticSpec};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn suite_with(p: &Project, name: &str, seeds: &[u64], dataset_extra: &str) {
    p.write(
        &format!("suites/{name}.toml"),
        &tiny_suite(name, &["baseline", "ddgsd"], seeds, 4, "")
            .replace("test = 64\n", &format!("test = 64\n{dataset_extra}")),
    );
}

/// SHA-256 over the samples `ids` of the synthetic training split, each as
/// its label (u16 LE) and its 3072 pixel bytes (README "Fingerprints").
fn part_fingerprint(ids: &[usize]) -> String {
    let d = generate(&SyntheticSpec {
        classes: 4,
        train: 192,
        test: 64,
        ..SyntheticSpec::default()
    });
    let t = d.train_split();
    let mut h = Sha256::new();
    for &i in ids {
        h.update(t.labels[i].to_le_bytes());
        h.update(&t.pixels[i * 3072..(i + 1) * 3072]);
    }
    hex::encode(h.finalize())
}

#[test]
fn a_holdout_is_recorded_fingerprinted_and_selects_the_best_epoch() {
    let p = Project::new();
    suite_with(&p, "h", &[0, 1], "holdout = 32\n");
    let o = p.run(&["run", "suites/h.toml", "--no-check", "--out", "r"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("val top1"),
        "progress shows it: {}",
        stderr(&o)
    );
    let recs = p.records("r", "h");
    assert_eq!(recs.len(), 4);
    let h0 = &recs[0]["dataset"]["holdout"];
    for r in &recs {
        // Every run of the suite holds out the same samples (the dataset
        // seed chooses them, not the run seed).
        assert_eq!(&r["dataset"]["holdout"], h0);
    }
    let ids: Vec<usize> = h0["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(ids.len(), 32);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(h0["n"], 32);
    assert_eq!(h0["stratified"], true);
    assert_eq!(h0["train_len"], 160);
    // Stratified: 4 balanced classes give 8 each.
    let d = generate(&SyntheticSpec {
        classes: 4,
        train: 192,
        test: 64,
        ..SyntheticSpec::default()
    });
    let labels = &d.train_split().labels;
    for c in 0..4u16 {
        let per_class = labels.iter().filter(|&&l| l == c).count();
        let held = ids.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!(held, (32 * per_class + 96) / 192, "class {c}");
    }
    // The fingerprints follow the README's definition.
    let rest: Vec<usize> = (0..192).filter(|i| !ids.contains(i)).collect();
    assert_eq!(h0["holdout_fingerprint"], part_fingerprint(&ids).as_str());
    assert_eq!(h0["train_fingerprint"], part_fingerprint(&rest).as_str());
    // Validation metrics every epoch; the best epoch is the first with the
    // best validation top-1, and top1_best is the test top-1 there.
    for r in &recs {
        let hist = r["history"].as_array().unwrap();
        for h in hist {
            for k in [
                "val_top1", "val_top5", "val_nll", "val_ece", "test_nll", "test_ece",
            ] {
                assert!(h[k].is_number(), "{k} at epoch {}", h["epoch"]);
            }
        }
        let best = hist
            .iter()
            .fold(None::<&Value>, |b, h| match b {
                Some(b) if b["val_top1"].as_f64() >= h["val_top1"].as_f64() => Some(b),
                _ => Some(h),
            })
            .unwrap();
        let m = &r["metrics"];
        assert_eq!(m["best_on"], "validation");
        assert_eq!(m["best_epoch"], best["epoch"]);
        assert_eq!(m["top1_best"], best["test_top1"]);
        assert_eq!(m["val_top1_best"], best["val_top1"]);
        assert_eq!(m["val_top1_final"], hist.last().unwrap()["val_top1"]);
    }
    // The reports say how "best" was chosen.
    let o = p.run(&["report", "r/h", "--which", "best"]);
    let out = stdout(&o);
    assert!(
        out.contains("best epoch by validation top-1 (held-out split)"),
        "{out}"
    );
    assert!(out.contains("holdout = 32"), "{out}");
    let o = p.run(&["report", "r/h", "--which", "best", "--format", "latex"]);
    assert!(stdout(&o).contains("validation top-1"), "{}", stdout(&o));
    // calibrate --metric top1_best writes the selection into each source.
    let o = p.run(&[
        "calibrate",
        "r/h",
        "--expected",
        "expected/h.toml",
        "--metric",
        "top1_best",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let e = std::fs::read_to_string(p.path().join("expected/h.toml")).unwrap();
    assert!(e.contains("metric = \"top1_best\""), "{e}");
    assert!(e.contains("epoch of the best validation top-1"), "{e}");
    let o = p.run(&["check", "r/h", "--expected", "expected/h.toml"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains(
            "- note: top1_best is the test top-1 at the epoch of the best validation top-1"
        ),
        "{}",
        stdout(&o)
    );
}

#[test]
fn without_a_holdout_best_is_best_on_test_and_the_seed_moves_the_split() {
    let p = Project::new();
    suite_with(&p, "n", &[0], "");
    let o = p.run(&["run", "suites/n.toml", "--no-check", "--out", "r"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = p.records("r", "n").remove(0);
    assert!(r["dataset"].get("holdout").is_none());
    assert_eq!(r["metrics"]["best_on"], "test");
    assert!(r["history"][0].get("val_top1").is_none());
    assert!(r["config"].get("holdout").is_none(), "no holdout, no field");
    let o = p.run(&["report", "r/n", "--which", "best"]);
    assert!(stdout(&o).contains("best on test"), "{}", stdout(&o));
    // Another dataset seed is another dataset for synthetic data, but the
    // draw is of the seed too: two plans, two different splits.
    let split = |seed: u64| {
        let d = generate(&SyntheticSpec {
            classes: 4,
            train: 192,
            test: 64,
            seed,
            ..SyntheticSpec::default()
        });
        let labels: Vec<i64> = d
            .train_split()
            .labels
            .iter()
            .map(|&l| i64::from(l))
            .collect();
        ddgsd_bench::data::holdout::choose(&labels, 4, 32, seed)
            .unwrap()
            .0
    };
    assert_ne!(split(0), split(1));
}

#[test]
fn bad_holdouts_are_refused_with_one_line() {
    let p = Project::new();
    for (extra, needle) in [
        ("holdout = 192\n", "dataset.holdout"),
        ("holdout = 500\n", "fewer than the 192 training samples"),
    ] {
        suite_with(&p, "b", &[0], extra);
        let o = p.run(&["plan", "suites/b.toml"]);
        assert_eq!(code(&o), 2, "{extra}");
        assert!(error_line(&o).contains(needle), "{}", error_line(&o));
    }
    // A real dataset's seed only chooses a holdout.
    p.write(
        "suites/c.toml",
        &tiny_suite("c", &["baseline"], &[0], 1, "").replace(
            "name = \"synthetic\"\nclasses = 4\ntrain = 192\ntest = 64\n",
            "name = \"cifar10\"\npath = \"data\"\nseed = 3\n",
        ),
    );
    let o = p.run(&["plan", "suites/c.toml"]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("dataset.seed"),
        "{}",
        error_line(&o)
    );
    assert!(error_line(&o).contains("holdout"), "{}", error_line(&o));
    let ok = std::fs::read_to_string(p.path().join("suites/c.toml"))
        .unwrap()
        .replace("seed = 3\n", "seed = 3\nholdout = 5000\n");
    p.write("suites/c.toml", &ok);
    let o = p.run(&["plan", "suites/c.toml"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("5000 training samples held out for validation (seed 3)"),
        "{}",
        stdout(&o)
    );
}
