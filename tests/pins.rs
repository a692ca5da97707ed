//! Checkpoint pins: written by `pin` (keeping the file's comments), compared
//! only on the platform they were made on, never a silent pass elsewhere.
mod common;
use common::*;

#[test]
fn pin_then_check_on_this_and_on_another_platform() {
    let p = Project::new();
    p.write(
        "suites/p.toml",
        &tiny_suite("p", &["baseline", "ddgsd"], &[0], 1, ""),
    );
    let o = p.run(&["run", "suites/p.toml", "--no-check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let recs = p.records("results", "p");
    let exp = expected_from(&p, "p", &recs, 0.5, "\n# a comment that must survive\n");
    let o = p.run(&["pin", "results/p"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("2 pins written"), "{}", stderr(&o));
    let text = std::fs::read_to_string(&exp).unwrap();
    assert!(text.contains("# a comment that must survive"), "{text}");
    assert!(text.contains("# test expectations"));
    let platform = recs[0]["platform"].as_str().unwrap();
    assert!(text.contains(&format!("[pins.\"{platform}\"]")), "{text}");
    assert!(text.contains(recs[0]["checkpoint_sha256"].as_str().unwrap()));

    let c = p.run(&["check", "results/p"]);
    assert_eq!(code(&c), 0, "{}", stdout(&c));
    assert!(
        stdout(&c).contains("Checkpoint pins: 2 match, 0 differ"),
        "{}",
        stdout(&c)
    );
    // Pinning again changes nothing.
    let o = p.run(&["pin", "results/p"]);
    assert!(stderr(&o).contains("0 pins written"));

    // A wrong pin fails the check and is named.
    let sha = recs[1]["checkpoint_sha256"].as_str().unwrap();
    let bad = "0".repeat(64);
    std::fs::write(&exp, text.replace(sha, &bad)).unwrap();
    let c = p.run(&["check", "results/p"]);
    assert_eq!(code(&c), 1);
    let rid = recs[1]["run_id"].as_str().unwrap();
    assert!(
        stdout(&c).contains(&format!("✗ {rid}: checkpoint_sha256 {sha}, pinned {bad}")),
        "{}",
        stdout(&c)
    );

    // Pins of another platform only: reported, not a failure.
    std::fs::write(
        &exp,
        text.replace(platform, "cuda-some-gpu/torch2.11.0/fp32/t2"),
    )
    .unwrap();
    let c = p.run(&["check", "results/p"]);
    assert_eq!(code(&c), 0, "{}", stdout(&c));
    assert!(
        stdout(&c).contains("2 runs not pinned for this platform"),
        "{}",
        stdout(&c)
    );

    // A malformed pin is an input error.
    std::fs::write(&exp, text.replace(sha, "xyz")).unwrap();
    let c = p.run(&["check", "results/p"]);
    assert_eq!(code(&c), 2);
    assert!(error_line(&c).contains("pins."), "{}", error_line(&c));
}

#[test]
fn thread_count_is_part_of_the_platform_and_recorded_as_overridden() {
    let p = Project::new();
    p.write(
        "suites/t1.toml",
        &tiny_suite("t1", &["baseline"], &[0], 1, ""),
    );
    let o = p.run(&["run", "suites/t1.toml", "--no-check", "--threads", "1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = p.records("results", "t1").remove(0);
    assert_eq!(r["env"]["threads"], 1);
    assert_eq!(r["env"]["threads_overridden"], true);
    assert_eq!(r["config"]["runtime"]["threads"], 1);
    assert!(
        r["platform"].as_str().unwrap().ends_with("/t1"),
        "{}",
        r["platform"]
    );
    let o = p.run(&["run", "suites/t1.toml", "--no-check", "--out", "two"]);
    assert_eq!(code(&o), 0);
    let r2 = p.records("two", "t1").remove(0);
    assert_eq!(r2["env"]["threads_overridden"], false);
    assert!(r2["platform"].as_str().unwrap().ends_with("/t2"));
}
