//! The defects of the bad-input and fault sweep (issue 15, item 5), each
//! through the binary: files other users can read, a read-only archive still
//! judged, read-only expected files left alone, calibrate's one seed and
//! `--floor 0`, values that passed validation and failed hours later or did
//! nothing, LaTeX labels, one-line errors, leftovers of killed writers.
mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Every file and folder under `dir` with its mode.
fn modes(dir: &Path, out: &mut Vec<(String, u32, bool)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        out.push((
            e.path().display().to_string(),
            m.permissions().mode() & 0o777,
            m.is_dir(),
        ));
        if m.is_dir() {
            modes(&e.path(), out);
        }
    }
}

/// The binary as another user (nobody, when this test runs as root).
fn as_other_user(p: &Project, args: &[&str]) -> Output {
    let mut c = p.cmd(args);
    if is_root() {
        unsafe {
            c.pre_exec(|| {
                if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    c.output().unwrap()
}

#[test]
fn results_are_readable_by_other_users_and_a_read_only_archive_is_still_judged() {
    let p = Project::new();
    std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    p.write(
        "suites/u.toml",
        &tiny_suite("u", &["baseline"], &[0], 1, ""),
    );
    for (mask, out) in [(0o022, "shared"), (0o077, "private")] {
        let mut c = p.cmd(&["run", "suites/u.toml", "--no-check", "--out", out]);
        unsafe {
            c.pre_exec(move || {
                libc::umask(mask);
                Ok(())
            });
        }
        let o = c.output().unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let mut m = Vec::new();
        modes(&p.path().join(out), &mut m);
        for (path, mode, dir) in m {
            let want = if dir { 0o777 & !mask } else { 0o666 & !mask };
            assert_eq!(mode, want, "{path}: umask {mask:o}");
        }
    }
    expected_from(&p, "u", &p.records("shared", "u"), 50.0, "");
    for f in ["expected", "expected/u.toml"] {
        let mode = if f.ends_with("toml") { 0o644 } else { 0o755 };
        std::fs::set_permissions(p.path().join(f), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // Another user reports the shared results; check on results it cannot
    // write (a read-only archive) still judges, and says the table was not saved.
    let dir = p.path().join("shared/u");
    if !is_root() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let r = as_other_user(&p, &["report", "shared/u"]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert!(stdout(&r).contains("Verdict: PASS"), "{}", stdout(&r));
    let c = as_other_user(&p, &["check", "shared/u"]);
    assert_eq!(code(&c), 0, "{}", stderr(&c));
    assert!(stdout(&c).contains("Verdict: PASS"), "{}", stdout(&c));
    assert!(
        stderr(&c).contains("warning:")
            && stderr(&c).contains("table.md and verdict.json not written"),
        "{}",
        stderr(&c)
    );
    // The private results are not readable by another user: an input error.
    if is_root() {
        let r = as_other_user(&p, &["report", "private/u"]);
        assert_eq!(code(&r), 2, "{}", stderr(&r));
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn calibrate_and_pin_leave_a_read_only_expected_file_and_calibrated_bands_hold() {
    let p = Project::new();
    p.write(
        "suites/c.toml",
        &tiny_suite("c", &["baseline", "ddgsd"], &[0], 1, ""),
    );
    let o = p.run(&["run", "suites/c.toml", "--no-check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // One seed: its sd is undefined, not 0.00; --floor 0 --k 0: the bands
    // still hold on the runs they came from (the centre is rounded).
    let o = p.run(&["calibrate", "results/c", "--floor", "0", "--k", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(p.path().join("expected/c.toml")).unwrap();
    assert!(
        text.contains("sd undefined: one seed") && !text.contains("sd 0.00"),
        "{text}"
    );
    let c = p.run(&["check", "results/c"]);
    assert_eq!(code(&c), 0, "{}{}", stdout(&c), stderr(&c));
    for (flag, v, shown) in [
        ("--k", "-1", "-1"),
        ("--floor", "-0.5", "-0.5"),
        ("--k", "nan", "NaN"),
    ] {
        let o = p.run(&["calibrate", "results/c", flag, v]);
        assert_eq!(code(&o), 2, "{flag} {v}");
        assert!(
            error_line(&o).contains(&format!("{flag} {shown}: expected a finite number >= 0")),
            "{}",
            error_line(&o)
        );
    }
    // A read-only expected file is refused, and left as it was.
    let e = p.path().join("expected/c.toml");
    std::fs::set_permissions(&e, std::fs::Permissions::from_mode(0o444)).unwrap();
    for cmd in ["calibrate", "pin"] {
        let o = p.run(&[cmd, "results/c"]);
        assert_eq!(code(&o), 2, "{cmd}: {}", stderr(&o));
        assert!(
            error_line(&o).contains("expected/c.toml: read-only (mode 444)"),
            "{}",
            error_line(&o)
        );
        assert_eq!(std::fs::read_to_string(&e).unwrap(), text, "{cmd}");
        assert_eq!(
            std::fs::metadata(&e).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }
}

fn plan_error(p: &Project, suite: &str) -> String {
    p.write("suites/v.toml", suite);
    let o = p.run(&["plan", "suites/v.toml"]);
    assert_eq!(code(&o), 2, "{suite}");
    error_line(&o)
}

#[test]
fn values_that_would_fail_hours_later_or_do_nothing_are_refused() {
    let p = Project::new();
    let good = tiny_suite("v", &["ddgsd"], &[0], 4, "");
    p.write("suites/v.toml", &good);
    assert_eq!(code(&p.run(&["plan", "suites/v.toml"])), 0);
    let cases: Vec<(String, &str)> = vec![
        (format!("{good}\n[loss]\ntemperature = inf\n"), "field `loss.temperature`: expected a positive finite value, got inf"),
        (good.replace("lr = 0.05", "lr = inf"), "field `train.lr`: expected a positive finite value"),
        (good.replace("milestones = []", "milestones = [0]"), "a milestone at epoch 0 scales the rate of the whole run"),
        (good.replace("milestones = []", "milestones = [2, 4]"), "milestone 4 is not before the last epoch (4 epochs): it never applies"),
        (good.replace("milestones = []\n", ""), "(the default [100, 150] of the 200-epoch recipe: set train.milestones"),
        (good.replace("milestones = []", "milestones = []\nwarmup_epochs = 4"), "field `train.warmup_epochs`: a warm-up of 4 epochs in a run of 4 leaves train.lr unused"),
        (good.replace("batch_size = 32", "batch_size = 500"), "field `train.batch_size`: run resnet8w4__ddgsd__s0 takes 500 images per step, but the training split has 192"),
    ];
    for (text, want) in cases {
        let e = plan_error(&p, &text);
        assert!(e.contains(want), "{want}\n{e}");
    }
    // A doubled batch (baseline_2x, double = "batch") counts.
    let e = plan_error(
        &p,
        &format!(
            "{}\n[arm.baseline_2x]\ndouble = \"batch\"\n",
            tiny_suite("v", &["baseline_2x"], &[0], 4, "")
                .replace("batch_size = 32", "batch_size = 100")
        ),
    );
    assert!(e.contains("takes 200 images per step"), "{e}");
}

#[test]
fn errors_are_one_line_and_say_what_the_command_has() {
    let p = Project::new();
    p.write(
        "suites/n.toml",
        &tiny_suite("n", &["baseline"], &[0], 1, ""),
    );
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/cifar100");
    let f = fixture.to_str().unwrap();
    for (args, want) in [
        (
            vec!["report", f, "--format", "xml"],
            "invalid value 'xml' for '--format <FORMAT>'",
        ),
        (
            vec!["report", f, "--metric", "foo"],
            "invalid value 'foo' for '--metric <METRIC>'",
        ),
        (
            vec!["run", "suites/n.toml", "--lease-timeout", "-1"],
            "--lease-timeout -1: expected a finite number of seconds, at least 1",
        ),
        (
            vec!["run", "suites/n.toml", "--threads", "-2"],
            "invalid value '-2' for '--threads <THREADS>'",
        ),
        (
            vec!["run", "suites/n.toml", "--bogus"],
            "unexpected argument '--bogus'",
        ),
        (
            vec!["report", f, "--format", "latex", "--label", "tab:a b"],
            "--label `tab:a b`: ` ` cannot be written in a \\label key",
        ),
    ] {
        let o = p.run(&args);
        assert_eq!(code(&o), 2, "{args:?}");
        let e = stderr(&o);
        assert_eq!(
            e.trim_end().lines().count(),
            1,
            "{args:?}: one line, got:\n{e}"
        );
        assert!(
            e.starts_with("ddgsd-bench: error: ") && e.contains(want),
            "{args:?}: {e}"
        );
    }
    // The hint of a missing expected file names only what the command has.
    let o = p.run(&["run", "suites/n.toml", "--no-check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for args in [
        vec!["check", "results/n"],
        vec!["compare", "results/n", "results/n"],
    ] {
        let o = p.run(&args);
        assert_eq!(code(&o), 2);
        let e = error_line(&o);
        assert!(
            e.contains("give one with --expected") && !e.contains("--no-check"),
            "{e}"
        );
    }
    let o = p.run(&["run", "suites/n.toml"]);
    assert!(
        error_line(&o).contains("--no-check to skip checking"),
        "{}",
        error_line(&o)
    );
    // The LaTeX label is a key, not text: written as given.
    let o = p.run(&[
        "report",
        f,
        "--format",
        "latex",
        "--label",
        "tab:abl_cifar-100",
    ]);
    assert!(
        stdout(&o).contains("\\label{tab:abl_cifar-100}"),
        "{}",
        stdout(&o)
    );
    // --help lists the exit codes.
    let o = p.run(&["--help"]);
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).contains("  3  stopped without a verdict"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_resumed_run_removes_the_temporary_files_a_killed_worker_left_and_nothing_else() {
    let p = Project::new();
    p.write(
        "suites/k.toml",
        &tiny_suite("k", &["baseline"], &[0], 3, ""),
    );
    let run = p.path().join("results/k/resnet8w4__baseline__s0");
    let mut child = p
        .cmd(&["run", "suites/k.toml", "--no-check"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("a checkpoint", Duration::from_secs(120), || {
        run.join("checkpoint/state.json").exists()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let host = ddgsd_bench::util::proc::hostname();
    // What a writer killed before its rename leaves (a checkpoint-sized
    // one too), what an earlier version left, and a file that is not ours.
    let planted = [
        format!("checkpoint/.tmp-{}@{host}@Ab12Cd.safetensors", child.id()),
        ".tmp-Xy34Zw.json".to_string(),
        format!(".lease-{host}-{}-1-0.tmp", child.id()),
    ];
    for f in &planted {
        std::fs::write(run.join(f), vec![0u8; 1 << 20]).unwrap();
    }
    std::fs::write(run.join("notes.txt"), "mine").unwrap();
    let o = p.run(&["run", "suites/k.toml", "--no-check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let line = stderr(&o)
        .lines()
        .find(|l| l.contains("temporary file(s) a killed worker left"))
        .unwrap_or_else(|| panic!("{}", stderr(&o)))
        .to_string();
    for f in &planted {
        assert!(!run.join(f).exists(), "{f}");
        assert!(line.contains(f.as_str()), "{f}: {line}");
    }
    assert_eq!(
        std::fs::read_to_string(run.join("notes.txt")).unwrap(),
        "mine"
    );
}
