//! `compare` and `calibrate` through the binary, on copies of the fixed
//! records of tests/fixtures/report.
mod common;
use common::*;
use std::path::Path;

/// A project with the fixtures under tests/fixtures/report (the paths
/// their suite.json records).
fn project() -> Project {
    let p = Project::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report");
    copy_dir(&src, &p.path().join("tests/fixtures/report"));
    p
}

fn edit_record(p: &Project, rel: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let path = p.path().join(rel);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn compare_finds_the_one_changed_record() {
    let p = project();
    let a = "tests/fixtures/report/imagenet";
    copy_dir(&p.path().join(a), &p.path().join("copy"));
    let same = p.run(&["compare", a, "copy"]);
    assert_eq!(code(&same), 0, "{}{}", stdout(&same), stderr(&same));
    assert!(stdout(&same).contains("Checkpoints: 4 of 4 runs equal."));
    assert!(stdout(&same).contains("Verdict: PASS"));

    // Another platform, same numbers: hashes may differ, the verdict holds.
    edit_record(&p, "copy/imagenet_resnet18__ddgsd__s0/record.json", |r| {
        r["platform"] = "cuda-h100/torch2.11.0/cuda12.8/fp32".into();
        r["checkpoint_sha256"] = "1".repeat(64).into();
    });
    let o = p.run(&["compare", a, "copy"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("differs (other platform)"),
        "{}",
        stdout(&o)
    );

    // One record 5 points lower: Δ -2.50 of the mean, outside ± 1.00.
    edit_record(&p, "copy/imagenet_resnet18__ddgsd__s1/record.json", |r| {
        let x = r["metrics"]["top1_final"].as_f64().unwrap();
        r["metrics"]["top1_final"] = (x - 5.0).into();
    });
    let o = p.run(&["compare", a, "copy"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("(Δ -5.00)"), "{out}");
    assert!(
        out.contains(
            "✗ imagenet_resnet18 / ddgsd top1_final: 70.83 → 68.33, Δ -2.50 outside ± 1.00"
        ),
        "{out}"
    );
    assert!(out.contains("✓ imagenet_resnet18 / baseline"), "{out}");
    assert!(out.contains("Verdict: FAIL"), "{out}");

    // Same platform, different checkpoint, same metrics: not reproducible.
    copy_dir(&p.path().join(a), &p.path().join("copy2"));
    edit_record(
        &p,
        "copy2/imagenet_resnet18__baseline__s0/record.json",
        |r| {
            r["checkpoint_sha256"] = "2".repeat(64).into();
        },
    );
    let o = p.run(&["compare", a, "copy2"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("differs (same platform) ✗"));

    // A run missing on one side fails.
    std::fs::remove_dir_all(p.path().join("copy2/imagenet_resnet18__ddgsd__s1")).unwrap();
    let o = p.run(&["compare", a, "copy2"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("70.69 → missing"), "{}", stdout(&o));

    // Two different suites: input error, exit 2, one line.
    let o = p.run(&["compare", a, "tests/fixtures/report/cifar100"]);
    assert_eq!(code(&o), 2);
    assert!(error_line(&o).contains("suite"), "{}", stderr(&o));
}

#[test]
fn calibrate_moves_reference_bands_and_keeps_published_ones_and_comments() {
    let p = project();
    let exp = p
        .path()
        .join("tests/fixtures/report/expected/cifar100.toml");
    let before = std::fs::read_to_string(&exp).unwrap();
    // The fixture fails its check on purpose (a moved band, a missing one).
    let c = p.run(&["check", "tests/fixtures/report/cifar100"]);
    assert_eq!(code(&c), 1, "{}", stdout(&c));
    let o = p.run(&[
        "calibrate",
        "tests/fixtures/report/cifar100",
        "--k",
        "2",
        "--floor",
        "0.5",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 bands added, 3 updated, 2 published bands kept"),
        "{}",
        stderr(&o)
    );
    let after = std::fs::read_to_string(&exp).unwrap();
    // Comments and the claim are kept; the rule is documented in the file.
    assert!(after.contains("# Expected file of the golden-test fixtures"));
    assert!(after.contains("# calibrate: bands set by `ddgsd-bench calibrate`"));
    assert!(after.contains("[[claim]]\nbetter = \"ddgsd\""));
    // Published bands are untouched.
    for published in [
        "centre = 76.55\ntolerance = 1.0",
        "centre = 78.53\ntolerance = 1.0",
    ] {
        assert!(before.contains(published) && after.contains(published));
    }
    // resnet32/two_branch: seeds 70.15, 69.89, 70.34 -> mean 70.13, sd 0.226 -> tol max(0.5, 0.45).
    assert!(
        after.contains("arm = \"two_branch\"\nmetric = \"top1_final\"\ncentre = 70.13\ntolerance = 0.5\nseeds = 3"),
        "{after}"
    );
    // resnet18/two_branch: sd 0.445 -> tolerance 0.89.
    assert!(
        after.contains("centre = 75.97\ntolerance = 0.89"),
        "{after}"
    );
    let c = p.run(&["check", "tests/fixtures/report/cifar100"]);
    assert_eq!(code(&c), 0, "{}", stdout(&c));
    // Idempotent: a second run changes nothing but the date.
    let o = p.run(&["calibrate", "tests/fixtures/report/cifar100"]);
    assert!(
        stderr(&o).contains("0 bands added, 4 updated"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(&exp)
            .unwrap()
            .matches("[[band]]")
            .count(),
        6
    );

    // A new expected file is created when missing.
    let o = p.run(&[
        "calibrate",
        "tests/fixtures/report/imagenet",
        "--expected",
        "new.toml",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let new = std::fs::read_to_string(p.path().join("new.toml")).unwrap();
    assert!(new.contains("suite = \"imagenet\""), "{new}");
    assert_eq!(new.matches("[[band]]").count(), 2);
    let c = p.run(&[
        "check",
        "tests/fixtures/report/imagenet",
        "--expected",
        "new.toml",
    ]);
    assert_eq!(code(&c), 0, "{}", stdout(&c));

    // An expected file of another suite is refused, and left as it was.
    let o = p.run(&[
        "calibrate",
        "tests/fixtures/report/cifar100",
        "--expected",
        "new.toml",
    ]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        std::fs::read_to_string(p.path().join("new.toml")).unwrap(),
        new
    );
}

#[test]
fn report_plot_writes_svg_and_png_per_architecture() {
    let p = project();
    let o = p.run(&["report", "tests/fixtures/report/cifar100", "--plot", "figs"]);
    // Its expected file holds a band the fixture fails: report exits as check.
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stdout(&o).contains("Verdict: FAIL"), "{}", stdout(&o));
    for arch in ["resnet18", "resnet32"] {
        let png = std::fs::read(p.path().join(format!("figs/cifar100__{arch}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian.
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((w, h), (1000, 900));
        let svg =
            std::fs::read_to_string(p.path().join(format!("figs/cifar100__{arch}.svg"))).unwrap();
        for s in [
            "<svg",
            "baseline (3 seeds)",
            "two_branch (3 seeds)",
            "ddgsd (3 seeds)",
            "test top-1 (%)",
            "training loss",
            "<polygon",
        ] {
            assert!(svg.contains(s), "{arch}: no {s}");
        }
    }
}

#[test]
fn report_input_errors_are_one_line_exit_2() {
    let p = project();
    let (a, b) = (
        "tests/fixtures/report/cifar100",
        "tests/fixtures/report/imagenet",
    );
    // The ablation layout renders one directory.
    let o = p.run(&["report", a, b]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("use --layout paper"),
        "{}",
        stderr(&o)
    );
    // --expected once per directory, or not at all.
    let e = "tests/fixtures/report/expected/cifar100.toml";
    let o = p.run(&["report", "--layout", "paper", a, b, "--expected", e]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("--expected given 1 times for 2"),
        "{}",
        stderr(&o)
    );
    // An expected file of another suite is refused by name.
    let o = p.run(&[
        "compare",
        a,
        a,
        "--expected",
        "tests/fixtures/report/expected/imagenet.toml",
    ]);
    assert_eq!(code(&o), 2);
    assert!(error_line(&o).contains("imagenet.toml"), "{}", stderr(&o));
    // A record that does not load names its file.
    std::fs::write(
        p.path().join(a).join("resnet18__ddgsd__s0/record.json"),
        "{",
    )
    .unwrap();
    let o = p.run(&["report", a]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("resnet18__ddgsd__s0/record.json"),
        "{}",
        stderr(&o)
    );
    for cmd in ["compare", "calibrate"] {
        let args: Vec<&str> = if cmd == "compare" {
            vec![cmd, a, a]
        } else {
            vec![cmd, a]
        };
        let o = p.run(&args);
        assert_eq!(code(&o), 2, "{cmd}");
    }
}
