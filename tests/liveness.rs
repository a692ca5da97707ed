//! Dead workers are recognised as dead, live ones as live, through the real
//! binary: a zombie holder (killed, not reaped by its parent), a reused pid,
//! a worker that is PID 1 of a pid namespace and restarts in another one,
//! and a `--workers` child killed by a signal nobody sent.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const RUN: &str = "resnet8w4__baseline__s0";

/// A one-run suite (`epochs` epochs), its straight hashes and a passing expected file.
fn setup(epochs: u32, seeds: &[u64]) -> (Project, BTreeMap<String, String>) {
    let p = Project::new();
    p.write(
        "suites/one.toml",
        &tiny_suite("one", &["baseline"], seeds, epochs, ""),
    );
    let a = p.run(&["run", "suites/one.toml", "--no-check", "--out", "straight"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    expected_from(&p, "one", &p.records("straight", "one"), 50.0, "");
    let h = hashes(&p, "straight", "one");
    (p, h)
}

fn lease(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("lease.json")).unwrap()).unwrap()
}

fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

#[test]
fn a_zombie_holder_is_dead_and_its_run_is_taken_over() {
    let (p, straight) = setup(3, &[0]);
    let run_dir = p.path().join("r/one").join(RUN);
    let child = p
        .cmd(&["run", "suites/one.toml", "--no-check", "--out", "r"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for("a checkpoint", Duration::from_secs(120), || {
        run_dir.join("checkpoint/state.json").exists()
    });
    // SIGKILL and do not reap: a zombie, as under a PID 1 that never reaps.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("the zombie", Duration::from_secs(10), || {
        proc_state(pid) == Some('Z')
    });
    assert_eq!(
        unsafe { libc::kill(pid as i32, 0) },
        0,
        "kill(pid, 0) finds a zombie"
    );
    assert_eq!(lease(&run_dir)["pid"], pid);
    let r = p.run(&["run", "suites/one.toml", "--resume", "--out", "r"]);
    let log = stderr(&r);
    assert_eq!(code(&r), 0, "{log}");
    assert!(
        log.contains("taking the run over from") && log.contains("zombie"),
        "{log}"
    );
    assert!(stdout(&r).contains("Verdict: PASS"), "{}", stdout(&r));
    assert_eq!(hashes(&p, "r", "one"), straight);
    drop(child.wait_with_output()); // reap it now
}

#[test]
fn a_reused_pid_is_another_process_and_a_live_holder_is_respected() {
    let (p, straight) = setup(3, &[0]);
    let run_dir = p.path().join("r/one").join(RUN);
    let mut child = p
        .cmd(&["run", "suites/one.toml", "--no-check", "--out", "r"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("a checkpoint", Duration::from_secs(120), || {
        run_dir.join("checkpoint/state.json").exists()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // The dead holder's pid now names a live process of this host and pid
    // namespace: this test. With this test's own start time the lease is
    // live (the run is held: no verdict, exit 3); with the dead worker's
    // start time it is another process (the pid was reused).
    let mine = std::process::id();
    let stat = std::fs::read_to_string(format!("/proc/{mine}/stat")).unwrap();
    let start: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let mut l = lease(&run_dir);
    let dead_start = l["start_time"]
        .as_u64()
        .expect("leases record the start time");
    assert!(l["boot_id"].is_string() && l["pid_ns"].is_string(), "{l}");
    l["pid"] = mine.into();
    l["start_time"] = start.into();
    std::fs::write(run_dir.join("lease.json"), l.to_string()).unwrap();
    let r = p.run(&["run", "suites/one.toml", "--out", "r"]);
    assert_eq!(code(&r), 3, "{}", stderr(&r));
    assert!(
        stderr(&r).contains(&format!("{RUN} (pid {mine} on ")),
        "{}",
        stderr(&r)
    );
    l["start_time"] = dead_start.into();
    std::fs::write(run_dir.join("lease.json"), l.to_string()).unwrap();
    let r = p.run(&["run", "suites/one.toml", "--out", "r"]);
    let log = stderr(&r);
    assert_eq!(code(&r), 0, "{log}");
    assert!(
        log.contains(&format!("pid {mine} on ")) && log.contains("is another process now"),
        "{log}"
    );
    assert_eq!(hashes(&p, "r", "one"), straight);
}

/// `unshare --pid --fork --kill-child --mount-proc BIN ARGS`: the binary is
/// PID 1 of a new pid namespace, killed with the `unshare` process.
fn in_new_pid_namespace(p: &Project, args: &[&str]) -> Command {
    let mut c = Command::new("unshare");
    c.current_dir(p.path())
        .args(["--pid", "--fork", "--kill-child", "--mount-proc"])
        .arg(bin())
        .args(args);
    c
}

#[test]
fn a_worker_restarted_as_pid_1_of_another_namespace_does_not_take_its_old_lease_for_live_forever() {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "--mount-proc", "true"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            println!(
                "SKIP: unshare cannot make a pid namespace here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            println!("SKIP: unshare cannot run: {e}");
            return;
        }
    }
    let (p, straight) = setup(4, &[0]);
    let run_dir = p.path().join("r/one").join(RUN);
    let mut first = in_new_pid_namespace(&p, &["run", "suites/one.toml", "--out", "r"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("a checkpoint", Duration::from_secs(120), || {
        run_dir.join("checkpoint/state.json").exists()
    });
    first.kill().unwrap(); // unshare dies, and takes its PID 1 with it
    first.wait().unwrap();
    let l = lease(&run_dir);
    assert_eq!(l["pid"], 1, "the worker was PID 1 of its namespace: {l}");
    // Restarted as PID 1 of another namespace: the old lease bears its own
    // pid but another namespace's, whose pids it cannot look up. It is not
    // taken for its own (nor for a live one forever): without --wait the
    // worker stops without a verdict naming the holder, exit 3 ...
    let r = in_new_pid_namespace(&p, &["run", "suites/one.toml", "--out", "r"])
        .output()
        .unwrap();
    let log = stderr(&r);
    assert_eq!(code(&r), 3, "{log}");
    assert!(
        log.contains("(pid 1 in another pid namespace on ") && log.contains("--wait"),
        "{log}"
    );
    // ... and with --wait it takes the run over once the heartbeat is older
    // than the timeout, resumes it and checks: the straight hash.
    let r = in_new_pid_namespace(
        &p,
        &[
            "run",
            "suites/one.toml",
            "--out",
            "r",
            "--wait",
            "--lease-timeout",
            "2",
        ],
    )
    .output()
    .unwrap();
    let log = stderr(&r);
    assert_eq!(code(&r), 0, "{log}");
    assert!(log.contains("last heartbeat"), "{log}");
    assert_eq!(hashes(&p, "r", "one"), straight);
    assert_eq!(p.records("r", "one")[0]["timing"]["resumed"], true);
}

#[test]
fn a_workers_child_killed_by_a_signal_nobody_sent_is_reported_and_its_run_taken_over() {
    let (p, straight) = setup(6, &[0, 1]);
    let dir = p.path().join("w/one");
    let child = p
        .cmd(&[
            "run",
            "suites/one.toml",
            "--out",
            "w",
            "--workers",
            "cpu,cpu",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first run with a checkpoint and a worker's lease: kill that worker.
    let mut victim = None;
    wait_for("a worker's checkpoint", Duration::from_secs(120), || {
        victim = ["resnet8w4__baseline__s0", "resnet8w4__baseline__s1"]
            .iter()
            .map(|r| dir.join(r))
            .find(|d| {
                d.join("checkpoint/state.json").exists()
                    && !d.join("record.json").exists()
                    && d.join("lease.json").exists()
            });
        victim.is_some()
    });
    let run_dir = victim.unwrap();
    let l = lease(&run_dir);
    let (pid, worker) = (
        l["pid"].as_u64().unwrap() as i32,
        l["worker"].as_str().unwrap().to_string(),
    );
    assert!(worker.starts_with('w'), "{l}");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    let log = stderr(&out);
    let run = run_dir.file_name().unwrap().to_string_lossy().into_owned();
    if p.records("w", "one").len() == 2 && !log.contains("SIGKILL") {
        panic!("the worker finished before the kill; make the runs longer: {log}");
    }
    // Reported: which worker, which signal, which run it held ...
    assert!(
        log.contains(&format!("worker {worker} (pid {pid}) was killed by signal 9 (SIGKILL), which ddgsd-bench did not send, while it held {run} (its last checkpoint: epoch")),
        "{log}"
    );
    // ... taken over from its checkpoint by a new worker or a live sibling ...
    assert!(log.contains("starting a new worker on cpu"), "{log}");
    assert!(
        log.contains(&format!(
            "{run}: taking the run over from {worker} (pid {pid} on "
        )),
        "{log}"
    );
    // ... and the verdict of the complete results, with the death said.
    assert_eq!(code(&out), 0, "{log}");
    assert!(stdout(&out).contains("Verdict: PASS"), "{}", stdout(&out));
    assert!(log.contains("worker death(s) during the suite"), "{log}");
    assert!(
        !log.contains("every worker checkpointed"),
        "nobody pressed Ctrl-C: {log}"
    );
    assert_eq!(hashes(&p, "w", "one"), straight);
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("record.json")).unwrap()).unwrap();
    assert_eq!(rec["timing"]["resumed"], true);
}
