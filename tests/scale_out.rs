//! Scale-out through the binary: workers sharing one results directory
//! through leases (two processes, `--workers cpu,cpu`), stale and live
//! leases, Ctrl-C of a worker group, `plan --partition`, `slurm` scripts.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn no_leases_left(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            for f in std::fs::read_dir(e.path()).unwrap() {
                let n = f.unwrap().file_name().to_string_lossy().into_owned();
                assert!(!n.contains("lease"), "{n} left in {}", e.path().display());
            }
        }
    }
}

fn setup() -> (Project, BTreeMap<String, String>) {
    let p = Project::new();
    p.write(
        "suites/t.toml",
        &tiny_suite("t", &["baseline", "ddgsd"], &[0, 1], 2, ""),
    );
    let a = p.run(&["run", "suites/t.toml", "--no-check", "--out", "straight"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    expected_from(&p, "t", &p.records("straight", "t"), 50.0, "");
    let h = hashes(&p, "straight", "t");
    assert_eq!(h.len(), 4);
    (p, h)
}

#[test]
fn two_processes_and_workers_train_each_run_once_with_the_straight_hashes() {
    let (p, straight) = setup();
    // Two processes started together on one results directory.
    let spawn = || p.spawn(&["run", "suites/t.toml", "--out", "shared"]);
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let log = stderr(&a) + &stderr(&b);
    // The worker that finishes the last run checks (0); one that stops
    // while the other still holds a run has no verdict (3), never 0.
    for o in [&a, &b] {
        match code(o) {
            0 => assert!(stdout(o).contains("Verdict: PASS"), "{log}"),
            3 => assert!(
                stderr(o).contains("no verdict (exit 3): nothing left to claim")
                    && stderr(o).contains("held by other workers")
                    && !stdout(o).contains("Verdict"),
                "{log}"
            ),
            c => panic!("exit {c}: {log}"),
        }
    }
    assert!(code(&a) == 0 || code(&b) == 0, "{log}");
    let t = trainings(&log);
    assert_eq!(t.len(), 4, "{log}");
    assert!(
        t.values().all(|&n| n == 1),
        "a run trained twice: {t:?}\n{log}"
    );
    assert!(
        !trainings(&stderr(&a)).is_empty() && !trainings(&stderr(&b)).is_empty(),
        "both workers must have trained: {log}"
    );
    assert_eq!(hashes(&p, "shared", "t"), straight);
    // The worker that finished the last run checked the suite.
    let tables = [&a, &b]
        .iter()
        .filter(|o| stdout(o).contains("Verdict: PASS"))
        .count();
    assert!(tables >= 1, "{log}");
    assert!(p.path().join("shared/t/table.md").exists());
    no_leases_left(&p.path().join("shared/t"));

    // --workers cpu,cpu: the same, from one command.
    let w = p.run(&["run", "suites/t.toml", "--out", "w", "--workers", "cpu,cpu"]);
    let log = stderr(&w);
    assert_eq!(code(&w), 0, "{log}");
    let t = trainings(&log);
    assert_eq!(t.len(), 4, "{log}");
    assert!(t.values().all(|&n| n == 1), "{t:?}\n{log}");
    assert!(
        log.contains("[w1 cpu]") && log.contains("[w2 cpu]"),
        "{log}"
    );
    assert!(stdout(&w).contains("Verdict: PASS"), "{}", stdout(&w));
    assert_eq!(hashes(&p, "w", "t"), straight);
    no_leases_left(&p.path().join("w/t"));
    // Every record says it ran on one thread count, as configured.
    for r in p.records("w", "t") {
        assert_eq!(r["env"]["threads"], 2);
    }
}

#[test]
fn ctrl_c_stops_every_worker_with_a_checkpoint_and_resumes_to_the_same_hashes() {
    let p = Project::new();
    p.write(
        "suites/long.toml",
        &tiny_suite("long", &["baseline"], &[0, 1], 6, ""),
    );
    let a = p.run(&["run", "suites/long.toml", "--no-check", "--out", "straight"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    let straight = hashes(&p, "straight", "long");
    let child = p
        .cmd(&[
            "run",
            "suites/long.toml",
            "--no-check",
            "--out",
            "w",
            "--workers",
            "cpu,cpu",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until both runs have a checkpoint, then Ctrl-C the parent only.
    let dir = p.path().join("w/long");
    let t0 = Instant::now();
    loop {
        let n = ["resnet8w4__baseline__s0", "resnet8w4__baseline__s1"]
            .iter()
            .filter(|r| dir.join(r).join("checkpoint/state.json").exists())
            .count();
        if n == 2 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoints");
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let log = stderr(&out);
    assert_eq!(code(&out), 130, "{log}");
    assert!(
        log.contains(
            "Resume with: ddgsd-bench run suites/long.toml --out w --no-check --workers cpu,cpu"
        ),
        "{log}"
    );
    // On a loaded machine one worker may finish its run before the Ctrl-C
    // lands; every run still unfinished must have been checkpointed.
    let finished = p.records("w", "long").len();
    assert!(finished < 2, "stopped before the end: {log}");
    assert_eq!(
        log.matches("checkpointed at epoch").count() + finished,
        2,
        "{log}"
    );
    no_leases_left(&dir);
    let r = p.run(&[
        "run",
        "suites/long.toml",
        "--no-check",
        "--out",
        "w",
        "--workers",
        "cpu,cpu",
    ]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert_eq!(hashes(&p, "w", "long"), straight);
    let resumed = p
        .records("w", "long")
        .iter()
        .filter(|r| r["timing"]["resumed"] == true)
        .count();
    assert_eq!(resumed, 2 - finished);
}

#[test]
fn live_leases_are_skipped_stale_ones_taken_over_and_resumed() {
    let p = Project::new();
    p.write(
        "suites/one.toml",
        &tiny_suite("one", &["baseline"], &[0], 3, ""),
    );
    let a = p.run(&["run", "suites/one.toml", "--no-check", "--out", "straight"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    let straight = hashes(&p, "straight", "one");
    let run_dir = p.path().join("r/one/resnet8w4__baseline__s0");

    // A worker killed mid-run leaves its lease (its pid is dead): taken over at once, resumed.
    let mut child = p
        .cmd(&["run", "suites/one.toml", "--no-check", "--out", "r"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !run_dir.join("checkpoint/state.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        run_dir.join("lease.json").exists(),
        "a killed worker leaves its lease"
    );
    let r = p.run(&["run", "suites/one.toml", "--no-check", "--out", "r"]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert!(
        stderr(&r).contains("taking the run over from"),
        "{}",
        stderr(&r)
    );
    assert!(stderr(&r).contains("is gone"), "{}", stderr(&r));
    assert_eq!(hashes(&p, "r", "one"), straight);
    assert_eq!(p.records("r", "one")[0]["timing"]["resumed"], true);

    // A live lease of a worker on another machine: skipped; the worker stops without a verdict.
    let run2 = p.path().join("r2/one/resnet8w4__baseline__s0");
    std::fs::create_dir_all(&run2).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let lease = serde_json::json!({"token": "t", "host": "elsewhere", "pid": 1, "slurm_task": null,
        "worker": "gpu box", "started": now, "heartbeat": now});
    std::fs::write(run2.join("lease.json"), lease.to_string()).unwrap();
    expected_from(&p, "one", &p.records("straight", "one"), 50.0, "");
    let r = p.run(&["run", "suites/one.toml", "--out", "r2"]);
    let log = stderr(&r);
    assert_eq!(code(&r), 3, "no verdict while a run is held: {log}");
    assert!(
        log.contains("no verdict (exit 3)")
            && log.contains(
                "held by other workers: resnet8w4__baseline__s0 (gpu box (pid 1 on elsewhere))"
            )
            && log.contains("ddgsd-bench run suites/one.toml --out r2 --wait")
            && log.contains("ddgsd-bench check r2/one"),
        "{log}"
    );
    // With --no-check it has done its part: exit 0, nothing judged.
    let r = p.run(&["run", "suites/one.toml", "--out", "r2", "--no-check"]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert!(stderr(&r).contains("nothing to judge"), "{}", stderr(&r));
    assert!(
        !stdout(&r).contains("Verdict"),
        "no verdict while runs are held"
    );
    assert!(!run2.join("record.json").exists());
    // With --wait it waits until the heartbeat is older than the timeout, takes over and checks.
    let t0 = Instant::now();
    let r = p.run(&[
        "run",
        "suites/one.toml",
        "--out",
        "r2",
        "--wait",
        "--lease-timeout",
        "2",
    ]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert!(stdout(&r).contains("Verdict: PASS"), "{}", stdout(&r));
    assert_eq!(hashes(&p, "r2", "one"), straight);
    // A bad timeout is an input error.
    let r = p.run(&[
        "run",
        "suites/one.toml",
        "--out",
        "r3",
        "--lease-timeout",
        "0",
    ]);
    assert_eq!(code(&r), 2);
    assert!(error_line(&r).contains("--lease-timeout"));
}

fn plan_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("views"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect()
}

#[test]
fn plan_partitions_cover_the_plan_exactly_once() {
    let p = Project::new();
    p.write(
        "suites/big.toml",
        &tiny_suite(
            "big",
            &["baseline", "ddgsd", "two_branch"],
            &[0, 1, 2, 3, 4],
            1,
            "",
        ),
    );
    let all = p.run(&["plan", "suites/big.toml"]);
    assert_eq!(code(&all), 0);
    let all = plan_ids(&stdout(&all));
    assert_eq!(all.len(), 15);
    let mut seen: Vec<String> = Vec::new();
    for m in 1..=3 {
        let part = format!("hash:{m}/3");
        let o = p.run(&["plan", "suites/big.toml", "--partition", &part]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let ids = plan_ids(&stdout(&o));
        assert!(stdout(&o).contains(&format!("partition {part}: {} of the 15 runs", ids.len())));
        let j = p.run(&["plan", "suites/big.toml", "--partition", &part, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
        let jids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(jids, ids);
        seen.extend(ids);
    }
    seen.sort();
    let mut all_sorted = all.clone();
    all_sorted.sort();
    assert_eq!(seen, all_sorted, "every run in exactly one share");
    let bad = p.run(&["plan", "suites/big.toml", "--partition", "hash:4/3"]);
    assert_eq!(code(&bad), 2);
    assert!(error_line(&bad).contains("hash:M/N"));
}

#[test]
fn slurm_writes_the_two_scripts_and_checks_its_input() {
    let p = Project::new();
    p.write(
        "suites/t.toml",
        &tiny_suite("t", &["baseline"], &[0, 1, 2], 1, ""),
    );
    let r = p.run(&["slurm", "suites/t.toml", "--out", "res", "--array", "3"]);
    assert_eq!(code(&r), 2, "no expected file yet");
    assert!(error_line(&r).contains("expected/t.toml"));
    assert!(
        !p.path().join("res").exists(),
        "nothing written on bad input"
    );
    p.write(
        "expected/t.toml",
        "suite = \"t\"\n[[band]]\narch = \"resnet8w4\"\narm = \"baseline\"\nmetric = \"top1_final\"\ncentre = 50.0\ntolerance = 50.0\nseeds = 3\nsource = \"test\"\n",
    );
    // Options sbatch would take and then fail on, or that waste the cluster:
    // refused before anything is written, one line naming the option.
    for (args, what) in [
        (&["--array", "4"][..], "plan of 3 runs: 1 would sit idle"),
        (
            &["--array", "2", "--gpus-per-task", "2"][..],
            "4 workers for a plan of 3 runs",
        ),
        (
            &["--array", "3", "--cpus-per-task", "0"][..],
            "--cpus-per-task 0",
        ),
        (&["--array", "3", "--time", "bogus"][..], "--time `bogus`"),
        (
            &["--array", "3", "--lease-timeout", "-1"][..],
            "--lease-timeout -1",
        ),
        (&["--array", "3", "--threads", "0"][..], "--threads"),
    ] {
        let mut a = vec!["slurm", "suites/t.toml", "--out", "res"];
        a.extend(args);
        let r = p.run(&a);
        assert_eq!(code(&r), 2, "{args:?}");
        assert!(
            error_line(&r).contains(what),
            "{args:?}: {}",
            error_line(&r)
        );
        assert!(!p.path().join("res").exists(), "{args:?}: nothing written");
    }
    let r = p.run(&[
        "slurm",
        "suites/t.toml",
        "--out",
        "res",
        "--array",
        "3",
        "--gpus-per-task",
        "1",
        "--time",
        "2:00:00",
        "--sbatch-arg=--partition=gpu",
    ]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    let w = std::fs::read_to_string(p.path().join("res/t/slurm/worker.sbatch")).unwrap();
    let c = std::fs::read_to_string(p.path().join("res/t/slurm/check.sbatch")).unwrap();
    for l in [
        "#SBATCH --array=1-3",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --time=2:00:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --requeue",
    ] {
        assert!(w.contains(l), "{l}:\n{w}");
    }
    assert!(c.contains(" check ") && c.contains("--expected"), "{c}");
    assert!(
        stdout(&r).contains("sbatch --dependency=afterany:$a"),
        "{}",
        stdout(&r)
    );
    // The scripts are valid bash.
    for f in ["worker.sbatch", "check.sbatch"] {
        let s = std::process::Command::new("bash")
            .args(["-n", p.path().join("res/t/slurm").join(f).to_str().unwrap()])
            .status()
            .unwrap();
        assert!(s.success(), "{f}");
    }
}
