//! End to end through the binary: run → records → check → exit codes.
mod common;
use common::*;

#[test]
fn two_processes_give_identical_checkpoints_and_check_passes() {
    let p = Project::new();
    p.write(
        "suites/t.toml",
        &tiny_suite("t", &["baseline", "ddgsd"], &[0, 1], 2, ""),
    );
    let a = p.run(&["run", "suites/t.toml", "--no-check", "--out", "ra"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    // The second process keeps glibc's heap as the environment sets it: the
    // heap settings (src/platform/heap.rs) must not change a bit.
    let b = p
        .cmd(&["run", "suites/t.toml", "--no-check", "--out", "rb"])
        .env("MALLOC_TOP_PAD_", "1048576")
        .output()
        .unwrap();
    assert_eq!(code(&b), 0, "{}", stderr(&b));
    let ra = p.records("ra", "t");
    let rb = p.records("rb", "t");
    assert_eq!(ra.len(), 4);
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x["run_id"], y["run_id"]);
        assert_eq!(
            x["checkpoint_sha256"], y["checkpoint_sha256"],
            "{}",
            x["run_id"]
        );
        assert_eq!(x["metrics"], y["metrics"]);
        let strip = |h: &serde_json::Value| {
            let mut h = h.clone();
            for e in h.as_array_mut().unwrap() {
                e.as_object_mut().unwrap().remove("seconds");
            }
            h
        };
        assert_eq!(strip(&x["history"]), strip(&y["history"]));
    }
    // Different seeds and arms really differ.
    assert_ne!(ra[0]["checkpoint_sha256"], ra[1]["checkpoint_sha256"]);
    assert_ne!(ra[0]["checkpoint_sha256"], ra[2]["checkpoint_sha256"]);
    // The record carries what the issue asks for.
    let r = &ra[0];
    for k in [
        "run_id",
        "suite",
        "arch",
        "arm",
        "seed",
        "dataset",
        "epochs",
        "metrics",
        "checkpoint_sha256",
        "config",
        "env",
        "timing",
        "platform",
    ] {
        assert!(!r[k].is_null(), "record misses {k}");
    }
    for k in ["top1_final", "top5_final", "top1_best", "best_epoch"] {
        assert!(!r["metrics"][k].is_null(), "metrics miss {k}");
    }
    assert_eq!(r["env"]["threads"], 2);
    assert_eq!(
        r["env"]["heap"], "glibc, mmap threshold 32 MiB, trim threshold 2 GiB",
        "the binary tunes the heap before libtorch allocates"
    );
    assert_eq!(
        rb[0]["env"]["heap"],
        "glibc, left as the environment sets it (MALLOC_TOP_PAD_)"
    );
    assert_eq!(r["env"]["determinism"]["deterministic_algorithms"], true);
    assert_eq!(r["dataset"]["fingerprint"].as_str().unwrap().len(), 64);
    // `hash` recomputes the checkpoint hash from the file.
    let rid = r["run_id"].as_str().unwrap();
    let h = p.run(&["hash", &format!("ra/t/{rid}/model.safetensors")]);
    assert_eq!(code(&h), 0, "{}", stderr(&h));
    assert!(stdout(&h).starts_with(r["checkpoint_sha256"].as_str().unwrap()));

    // Bands centred on the results hold: exit 0, a table on stdout.
    expected_from(&p, "t", &ra, 0.5, "");
    let c = p.run(&["check", "ra/t"]);
    assert_eq!(code(&c), 0, "{}{}", stdout(&c), stderr(&c));
    let out = stdout(&c);
    assert!(out.contains("| arch"), "{out}");
    assert!(out.contains("Δ"), "{out}");
    assert!(out.contains("Verdict: PASS"), "{out}");
    assert!(p.path().join("ra/t/table.md").exists());
}

#[test]
fn a_moved_band_fails_with_exit_1_and_is_marked() {
    let p = Project::new();
    p.write(
        "suites/m.toml",
        &tiny_suite("m", &["baseline", "two_branch"], &[0], 1, ""),
    );
    let a = p.run(&["run", "suites/m.toml", "--no-check"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    let recs = p.records("results", "m");
    let exp = expected_from(&p, "m", &recs, 0.5, "");
    let text = std::fs::read_to_string(&exp).unwrap();
    // Move the two_branch band by 40 points.
    let moved = text.replacen(
        "arm = \"two_branch\"\nmetric = \"top1_final\"\ncentre = ",
        "arm = \"two_branch\"\nmetric = \"top1_final\"\ncentre = 40.0 + ",
        1,
    );
    let centre: f64 = recs[1]["metrics"]["top1_final"].as_f64().unwrap();
    let moved = moved.replace(
        &format!("40.0 + {centre}"),
        &format!("{}", (centre + 40.0) % 100.0),
    );
    std::fs::write(&exp, moved).unwrap();
    let c = p.run(&["check", "results/m"]);
    assert_eq!(code(&c), 1, "{}{}", stdout(&c), stderr(&c));
    let out = stdout(&c);
    assert!(out.contains("✗ resnet8w4 / two_branch top1_final"), "{out}");
    assert!(out.contains("Verdict: FAIL"), "{out}");
    // An explicit --expected file is used instead.
    let good = expected_from(&p, "m", &recs, 0.5, "");
    let other = p.write("other.toml", &std::fs::read_to_string(good).unwrap());
    std::fs::write(&exp, "suite = \"m\"\n").unwrap();
    let c = p.run(&["check", "results/m", "--expected", other.to_str().unwrap()]);
    assert_eq!(code(&c), 0, "{}", stdout(&c));
}

#[test]
fn missing_bands_and_failed_claims_are_reported() {
    let p = Project::new();
    p.write(
        "suites/c.toml",
        &tiny_suite("c", &["baseline", "ddgsd"], &[0, 1], 1, ""),
    );
    let a = p.run(&["run", "suites/c.toml", "--no-check"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    let recs = p.records("results", "c");
    // Only the baseline has a band: ddgsd is reported as unbanded.
    let base: Vec<_> = recs
        .iter()
        .filter(|r| r["arm"] == "baseline")
        .cloned()
        .collect();
    expected_from(&p, "c", &base, 0.5, "");
    let c = p.run(&["check", "results/c"]);
    assert_eq!(code(&c), 1);
    assert!(stdout(&c).contains("ddgsd: no band"), "{}", stdout(&c));
    // All bands, plus a claim that cannot hold (ddgsd beats baseline by 101).
    let claim = "\n[[claim]]\nbetter = \"ddgsd\"\nworse = \"baseline\"\nmetric = \"top1_final\"\nmin_delta = 101.0\nsource = \"impossible\"\n";
    expected_from(&p, "c", &recs, 0.5, claim);
    let c = p.run(&["check", "results/c"]);
    assert_eq!(code(&c), 1);
    let out = stdout(&c);
    assert!(out.contains("✗ ddgsd beats baseline by ≥ 101.00"), "{out}");
    assert!(out.contains("(n 2)"), "{out}");
    // A claim that holds by construction (min_delta -101) passes.
    let claim = claim.replace("101.0", "-101.0");
    expected_from(&p, "c", &recs, 0.5, &claim);
    let c = p.run(&["check", "results/c"]);
    assert_eq!(code(&c), 0, "{}", stdout(&c));
    assert!(stdout(&c).contains("✓ ddgsd beats baseline"));
    // The band needs as many seeds as it says.
    let exp = std::fs::read_to_string(p.path().join("expected/c.toml")).unwrap();
    std::fs::write(
        p.path().join("expected/c.toml"),
        exp.replace("seeds = 2", "seeds = 3"),
    )
    .unwrap();
    let c = p.run(&["check", "results/c"]);
    assert_eq!(code(&c), 1);
    assert!(
        stdout(&c).contains("2 runs, the band needs 3"),
        "{}",
        stdout(&c)
    );
}

#[test]
fn run_checks_and_reports_in_every_format() {
    let p = Project::new();
    p.write(
        "suites/f.toml",
        &tiny_suite("f", &["baseline", "two_branch_kl"], &[3], 1, ""),
    );
    let a = p.run(&["run", "suites/f.toml", "--no-check"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    let recs = p.records("results", "f");
    expected_from(&p, "f", &recs, 0.5, "");
    // Re-running into the finished directory trains nothing and checks.
    let again = p.run(&["run", "suites/f.toml"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(
        stderr(&again).contains("2 already finished"),
        "{}",
        stderr(&again)
    );
    assert!(stdout(&again).contains("two_branch_kl"));
    let csv = p.run(&["report", "results/f", "--format", "csv"]);
    assert_eq!(code(&csv), 0);
    let csv = stdout(&csv);
    assert!(
        csv.starts_with("layout,arch,arm,column,metric,which,n,mean,sd,published,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3);
    let json = p.run(&["report", "results/f", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["verdicts"][0]["passed"], true);
    assert_eq!(v["verdicts"][0]["cells"].as_array().unwrap().len(), 2);
    assert_eq!(v["report"]["rows"][0]["cells"].as_array().unwrap().len(), 2);
    let tex = p.run(&["report", "results/f", "--format", "latex"]);
    assert_eq!(code(&tex), 0);
    assert!(stdout(&tex).contains("\\toprule"), "{}", stdout(&tex));
    let plan = p.run(&["plan", "suites/f.toml"]);
    assert_eq!(code(&plan), 0);
    assert!(stdout(&plan).contains("resnet8w4__two_branch_kl__s3"));
}

#[test]
fn partitions_merge_by_copying_into_the_straight_result() {
    let p = Project::new();
    p.write(
        "suites/h.toml",
        &tiny_suite("h", &["baseline", "two_branch"], &[0, 1, 2], 1, ""),
    );
    let o = p.run(&["run", "suites/h.toml", "--no-check", "--out", "all"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let all = p.records("all", "h");
    for (m, out) in [("1", "w1"), ("2", "w2")] {
        let o = p.run(&[
            "run",
            "suites/h.toml",
            "--partition",
            &format!("hash:{m}/2"),
            "--out",
            out,
        ]);
        // A share is trained, not judged: no verdict (exit 3), and the line
        // names the check to run after merging.
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!("no verdict (exit 3): partition {m}/2"))
                && e.contains(&format!("ddgsd-bench check {out}/h")),
            "{e}"
        );
    }
    let (w1, w2) = (p.records("w1", "h"), p.records("w2", "h"));
    assert_eq!(w1.len() + w2.len(), 6);
    assert!(!w1.is_empty() && !w2.is_empty());
    // Merge by copying run directories.
    for e in std::fs::read_dir(p.path().join("w2/h")).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            let dst = p.path().join("w1/h").join(e.file_name());
            std::fs::create_dir_all(&dst).unwrap();
            for f in std::fs::read_dir(e.path()).unwrap() {
                let f = f.unwrap();
                if f.path().is_file() {
                    std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
                }
            }
        }
    }
    let merged = p.records("w1", "h");
    assert_eq!(merged.len(), 6);
    for (a, b) in all.iter().zip(&merged) {
        assert_eq!(a["run_id"], b["run_id"]);
        assert_eq!(a["checkpoint_sha256"], b["checkpoint_sha256"]);
    }
    expected_from(&p, "h", &all, 0.01, "");
    let c = p.run(&["check", "w1/h"]);
    assert_eq!(code(&c), 0, "{}", stdout(&c));
    // A record trained on other data cannot be merged silently.
    let rid = merged[0]["run_id"].as_str().unwrap();
    let rec_path = p.path().join("w1/h").join(rid).join("record.json");
    let text = std::fs::read_to_string(&rec_path).unwrap();
    let fp = merged[0]["dataset"]["fingerprint"].as_str().unwrap();
    std::fs::write(&rec_path, text.replace(fp, &"ab".repeat(32))).unwrap();
    let c = p.run(&["check", "w1/h"]);
    assert_eq!(code(&c), 1, "{}", stdout(&c));
    assert!(
        stdout(&c).contains("the records come from 2 different datasets"),
        "{}",
        stdout(&c)
    );
    let bad = p.run(&["run", "suites/h.toml", "--partition", "hash:3/2"]);
    assert_eq!(code(&bad), 2);
    assert!(error_line(&bad).contains("expected hash:M/N"));
}

#[test]
fn report_without_an_expected_file_checks_nothing() {
    let p = Project::new();
    p.write(
        "suites/n.toml",
        &tiny_suite("n", &["baseline"], &[0], 1, ""),
    );
    let o = p.run(&["run", "suites/n.toml", "--no-check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = p.run(&["report", "results/n"]);
    assert_eq!(code(&r), 0);
    let out = stdout(&r);
    assert!(out.contains("No expected file: nothing checked."), "{out}");
    assert!(
        !out.contains("Verdict") && !out.contains("no band"),
        "{out}"
    );
    let j = p.run(&["report", "results/n", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(
        (v["verdicts"][0]["checked"].as_bool(), v["passed"].as_bool()),
        (Some(false), Some(false))
    );
    // `check` needs an expected file: exit 2, not a silent pass.
    let c = p.run(&["check", "results/n"]);
    assert_eq!(code(&c), 2);
}
