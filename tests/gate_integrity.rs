//! A gate that never passes by accident: exit 0 only for a verdict that
//! holds; a verdict about the whole recorded plan and its own expected file
//! from any working directory; merged stale runs, band typos and GPUs that
//! do not exist refused as input errors; printed commands that resume with
//! every flag, and mismatch messages that name the flag.
mod common;
use common::*;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Bands for (resnet8w4, arm) over `seeds` runs, centred at `centre`.
fn bands(suite: &str, arms: &[&str], seeds: usize, centre: f64, tol: f64) -> String {
    let mut s = format!("suite = \"{suite}\"\n");
    for arm in arms {
        s.push_str(&format!(
            "\n[[band]]\narch = \"resnet8w4\"\narm = \"{arm}\"\nmetric = \"top1_final\"\ncentre = {centre}\ntolerance = {tol}\nseeds = {seeds}\nsource = \"test\"\n"
        ));
    }
    s
}

#[test]
fn two_workers_with_failing_bands_never_exit_0() {
    let p = Project::new();
    p.write(
        "suites/t.toml",
        &tiny_suite("t", &["baseline", "ddgsd"], &[0, 1], 2, ""),
    );
    p.write(
        "expected/t.toml",
        &bands("t", &["baseline", "ddgsd"], 2, 99.0, 0.5),
    );
    let spawn = || p.spawn(&["run", "suites/t.toml", "--out", "shared"]);
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let log = format!("{}\n{}", stderr(&a), stderr(&b));
    for o in [&a, &b] {
        match code(o) {
            1 => assert!(stdout(o).contains("Verdict: FAIL"), "{log}"),
            3 => assert!(stderr(o).contains("no verdict (exit 3)"), "{log}"),
            c => panic!("exit {c}: a failing suite must never exit 0 or 2:\n{log}"),
        }
    }
    assert!(code(&a) == 1 || code(&b) == 1, "one worker judged: {log}");
}

#[test]
fn check_compare_and_report_judge_the_recorded_plan_from_any_directory() {
    let p = Project::new();
    p.write(
        "suites/s.toml",
        &tiny_suite("s", &["baseline", "ddgsd"], &[0, 1], 1, ""),
    );
    p.write(
        "expected/s.toml",
        &bands("s", &["baseline", "ddgsd"], 2, 50.0, 50.0),
    );
    // A share of the plan only: the other runs are never begun.
    let o = p.run(&[
        "run",
        "suites/s.toml",
        "--no-check",
        "--partition",
        "hash:1/2",
        "--out",
        "part",
    ]);
    assert_eq!(
        code(&o),
        0,
        "--no-check: a finished share exits 0: {}",
        stderr(&o)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path().join("part/s/suite.json")).unwrap())
            .unwrap();
    assert_eq!(
        meta["plan"].as_array().unwrap().len(),
        4,
        "the whole plan: {meta}"
    );
    assert!(Path::new(meta["expected_file"].as_str().unwrap()).is_absolute());
    let trained = p.records("part", "s").len();
    assert!((1..4).contains(&trained), "a share: {trained}");
    let abs = p.path().join("part/s");
    // From another working directory, with a decoy expected/s.toml there
    // that is not a valid expected file: the recorded one is read.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(elsewhere.path().join("expected")).unwrap();
    std::fs::write(elsewhere.path().join("expected/s.toml"), "not toml [").unwrap();
    for cwd in [p.path(), elsewhere.path()] {
        let c = std::process::Command::new(bin())
            .current_dir(cwd)
            .args(["check", abs.to_str().unwrap()])
            .output()
            .unwrap();
        let (out, err) = (stdout(&c), stderr(&c));
        assert_eq!(code(&c), 3, "{out}{err}");
        assert!(
            out.contains(&format!(
                "Runs: {} of 4 planned have no record (never begun: ",
                4 - trained
            )) && out.contains(&format!(
                "Verdict: none: {} of the 4 planned runs",
                4 - trained
            )),
            "{out}"
        );
        assert!(
            err.contains("no verdict (exit 3)")
                && err.contains("finishes them")
                && err.contains(&format!("ddgsd-bench check {}", abs.display())),
            "{err}"
        );
        assert!(!err.contains("decoy") && !err.contains("not toml"), "{err}");
    }
    let c = p.run(&["compare", "part/s", "part/s"]);
    assert_eq!(code(&c), 3, "{}{}", stdout(&c), stderr(&c));
    assert!(
        stdout(&c).contains("unfinished in A, unfinished in B ✗"),
        "{}",
        stdout(&c)
    );
    let r = p.run(&["report", "part/s"]);
    assert_eq!(code(&r), 3, "{}", stderr(&r));
    // Finish the plan with the command the line gives; then every command
    // reaches the verdict, from anywhere.
    let line = stderr(&c)
        .lines()
        .find(|l| l.contains("finishes them"))
        .unwrap()
        .to_string();
    let cmd = line.split('`').nth(1).unwrap();
    let words: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    assert_eq!(words[0], "run", "{cmd}");
    let o = p.run(&words);
    assert_eq!(code(&o), 0, "{cmd}: {}", stderr(&o));
    assert!(stdout(&o).contains("Verdict: PASS"));
    for (args, want) in [
        (vec!["check", abs.to_str().unwrap()], 0),
        (
            vec!["compare", abs.to_str().unwrap(), abs.to_str().unwrap()],
            0,
        ),
        (vec!["report", abs.to_str().unwrap()], 0),
    ] {
        let c = std::process::Command::new(bin())
            .current_dir(elsewhere.path())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(code(&c), want, "{args:?}: {}{}", stdout(&c), stderr(&c));
    }
    // A band or claim naming an arm or architecture the suite does not
    // have is an input error naming the file and the entry (a typo in the
    // second band of a group used to drop it silently).
    let typo = format!(
        "{}\n[[band]]\narch = \"resnet8w4\"\narm = \"ddgsdd\"\nmetric = \"top1_best\"\ncentre = 50.0\ntolerance = 50.0\nseeds = 2\nsource = \"x\"\n",
        bands("s", &["baseline", "ddgsd"], 2, 50.0, 50.0)
    );
    p.write("expected/typo.toml", &typo);
    let c = p.run(&["check", "part/s", "--expected", "expected/typo.toml"]);
    assert_eq!(code(&c), 2);
    let e = error_line(&c);
    assert!(
        e.contains("expected/typo.toml: field `band[2].arm`: `ddgsdd` is not an arm of suite `s`"),
        "{e}"
    );
    let claim = format!(
        "{}\n[[claim]]\nbetter = \"ddgsd\"\nworse = \"basline\"\nmetric = \"top1_final\"\nmin_delta = 0.0\nsource = \"x\"\n",
        bands("s", &["baseline", "ddgsd"], 2, 50.0, 50.0)
    );
    p.write("expected/claim.toml", &claim);
    for args in [
        vec![
            "run",
            "suites/s.toml",
            "--out",
            "fresh",
            "--expected",
            "expected/claim.toml",
        ],
        vec![
            "compare",
            "part/s",
            "part/s",
            "--expected",
            "expected/claim.toml",
        ],
        vec!["report", "part/s", "--expected", "expected/claim.toml"],
    ] {
        let c = p.run(&args);
        assert_eq!(code(&c), 2, "{args:?}");
        assert!(
            error_line(&c).contains("field `claim[0].worse`: `basline`"),
            "{}",
            error_line(&c)
        );
    }
    assert!(
        !p.path().join("fresh").exists(),
        "refused before anything is written"
    );
}

#[test]
fn a_run_merged_from_a_machine_with_a_stale_suite_file_is_refused() {
    let p = Project::new();
    let s = tiny_suite("m", &["baseline"], &[0, 1], 1, "");
    p.write("suites/m.toml", &s);
    p.write("expected/m.toml", &bands("m", &["baseline"], 2, 50.0, 50.0));
    // The other machine's copy of the suite: another lr, and one more seed.
    p.write(
        "stale/m.toml",
        &s.replace("lr = 0.05", "lr = 0.07")
            .replace("seeds = [0, 1]", "seeds = [0, 1, 2]"),
    );
    for (suite, out) in [("suites/m.toml", "a"), ("stale/m.toml", "b")] {
        let o = p.run(&[
            "run",
            suite,
            "--no-check",
            "--out",
            out,
            "--expected",
            "expected/m.toml",
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let c = p.run(&["check", "a/m"]);
    assert_eq!(code(&c), 0, "{}", stdout(&c));
    let (a, b) = (p.path().join("a/m"), p.path().join("b/m"));
    // Its s2, which our plan does not have.
    let s2 = "resnet8w4__baseline__s2";
    copy_dir(&b.join(s2), &a.join(s2));
    let c = p.run(&["check", "a/m"]);
    assert_eq!(code(&c), 2, "{}", stdout(&c));
    assert!(
        error_line(&c).contains(&format!(
            "{s2}/record.json: run `{s2}` is not in the plan of this results directory"
        )),
        "{}",
        error_line(&c)
    );
    std::fs::remove_dir_all(a.join(s2)).unwrap();
    // Its s1 (trained with another lr) merged over ours.
    let s1 = "resnet8w4__baseline__s1";
    std::fs::remove_dir_all(a.join(s1)).unwrap();
    copy_dir(&b.join(s1), &a.join(s1));
    for cmd in ["check", "report", "calibrate", "pin"] {
        let c = p.run(&[cmd, "a/m"]);
        assert_eq!(code(&c), 2, "{cmd}: {}", stdout(&c));
        let e = error_line(&c);
        assert!(
            e.contains(&format!("{s1}/record.json: field `train.schedule.lr`: run `{s1}` was trained with 0.07, the plan of this results directory (suite.json) says 0.05")),
            "{cmd}: {e}"
        );
    }
    let c = p.run(&["compare", "a/m", "b/m"]);
    assert_eq!(code(&c), 2);
    // Training into it is refused too, naming the field, never advising to
    // remove a finished run.
    for suite in ["suites/m.toml", "stale/m.toml"] {
        let o = p.run(&["run", suite, "--out", "a"]);
        assert_eq!(code(&o), 2, "{suite}");
        let e = error_line(&o);
        assert!(
            e.contains("field `train.schedule.lr`")
                && e.contains("use another --out")
                && !e.contains("remove"),
            "{suite}: {e}"
        );
    }
}

#[test]
fn mismatches_name_the_flag_and_printed_commands_resume_with_every_flag() {
    let p = Project::new();
    p.write(
        "suites/r.toml",
        &tiny_suite("r", &["baseline"], &[0], 6, "checkpoint_every = 1"),
    );
    p.write("checks/r.toml", &bands("r", &["baseline"], 1, 50.0, 50.0));
    let flags = [
        "--expected",
        "checks/r.toml",
        "--threads",
        "2",
        "--lease-timeout",
        "30",
    ];
    let mut args = vec!["run", "suites/r.toml", "--out", "int"];
    args.extend(flags);
    let child = p.cmd(&args).stderr(Stdio::piped()).spawn().unwrap();
    let state = p
        .path()
        .join("int/r/resnet8w4__baseline__s0/checkpoint/state.json");
    wait_for("a checkpoint", Duration::from_secs(120), || state.exists());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 130, "{err}");
    let cmd = err
        .lines()
        .find_map(|l| l.split("Resume with: ").nth(1))
        .unwrap_or_else(|| panic!("{err}"))
        .to_string();
    assert_eq!(
        cmd,
        "ddgsd-bench run suites/r.toml --out int --expected checks/r.toml --threads 2 --lease-timeout 30"
    );
    // Without --threads the directory's config differs: the message names
    // the flag and how to continue, and advises no removal.
    let o = p.run(&[
        "run",
        "suites/r.toml",
        "--out",
        "int",
        "--expected",
        "checks/r.toml",
    ]);
    assert_eq!(code(&o), 2);
    let e = error_line(&o);
    assert!(
        e.contains("runtime.threads_overridden")
            && e.contains("made with --threads 2: give --threads 2 to continue it")
            && !e.contains("remove"),
        "{e}"
    );
    // The printed command resumes it and reaches the verdict.
    let words: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    let o = p.run(&words);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("Verdict: PASS"));
    // And the other way round: made without --threads, continued with one.
    let o = p.run(&["run", "suites/r.toml", "--out", "plain", "--no-check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = p.run(&[
        "run",
        "suites/r.toml",
        "--out",
        "plain",
        "--no-check",
        "--threads",
        "1",
    ]);
    assert_eq!(code(&o), 2);
    let e = error_line(&o);
    assert!(
        e.contains("field `runtime.threads`")
            && e.contains("without --threads: leave --threads out to continue it"),
        "{e}"
    );
}

#[test]
fn workers_on_a_gpu_the_parent_cannot_see_are_an_input_error() {
    let p = Project::new();
    p.write(
        "suites/g.toml",
        &tiny_suite("g", &["baseline"], &[0], 1, "")
            .replace("device = \"cpu\"", "device = \"auto\""),
    );
    p.write("expected/g.toml", &bands("g", &["baseline"], 1, 50.0, 50.0));
    // No GPU here: cuda:0 does not exist; on a GPU machine, cuda:64 does not.
    let gpus = tch::Cuda::device_count();
    let entry = if gpus == 0 {
        "cuda:0".to_string()
    } else {
        "cuda:64".to_string()
    };
    let o = p.run(&["run", "suites/g.toml", "--workers", &format!("cpu,{entry}")]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = error_line(&o);
    let seen = if gpus == 0 {
        "no CUDA device is visible here".to_string()
    } else {
        format!("only cuda:0..cuda:{} are visible", gpus - 1)
    };
    assert!(
        e.contains(&format!("entry {entry}: {seen}")) && e.contains("would train on the CPU"),
        "{e}"
    );
    assert!(!p.path().join("results").exists(), "nothing written");
}
