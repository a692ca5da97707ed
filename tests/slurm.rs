//! `ddgsd-bench slurm --submit` on a real Slurm: a one-node cluster started
//! by ci/slurm-cluster.sh (installing slurm-wlm and munge with apt-get when
//! missing). A suite runs as an array of 2 workers; one task is requeued
//! mid-run; every run is trained exactly once, the hashes equal a straight
//! local run, and the check job's exit code is the verdict. Prints
//! `SKIP: <reason>` where the cluster cannot be had (not root, no apt).
//! A second test runs a data-parallel suite with `--ranks-per-run 2`: srun
//! starts the two ranks of each run in the array task. The two tests take
//! turns (one cluster at a time).
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ci/slurm-cluster.sh")
}

/// Stops the daemons this test started (by the pids the script recorded), also on failure.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }
    fn log_tail(&self) -> String {
        let mut s = String::new();
        for f in ["slurmctld.log", "slurmd.log"] {
            let t = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            s += &format!(
                "--- {f}\n{}\n",
                lines[lines.len().saturating_sub(15)..].join("\n")
            );
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn slurm_cmd(c: &Cluster, prog: &str, args: &[&str]) -> String {
    let o = Command::new(prog)
        .args(args)
        .env("SLURM_CONF", c.conf())
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `scontrol show job -o ID` as key=value pairs (the first array element's line).
fn job_field(c: &Cluster, id: &str, key: &str) -> Option<String> {
    let out = slurm_cmd(c, "scontrol", &["show", "job", "-o", id]);
    out.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// One cluster at a time: the tests of this file take turns.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn start_cluster() -> Result<Cluster, String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: cannot install or start Slurm".into());
    }
    let t0 = Instant::now();
    let inst = Command::new("bash")
        .arg(script())
        .arg("install")
        .output()
        .map_err(|e| format!("bash: {e}"))?;
    if !inst.status.success() {
        let e = String::from_utf8_lossy(&inst.stderr);
        return Err(format!(
            "cannot install slurm-wlm munge: {}",
            e.lines().last().unwrap_or("")
        ));
    }
    eprintln!("slurm packages ready in {:.1}s", t0.elapsed().as_secs_f64());
    let c = Cluster {
        dir: tempfile::Builder::new().prefix("slurm-").tempdir().unwrap(),
    };
    let t0 = Instant::now();
    let st = Command::new("bash")
        .arg(script())
        .arg("start")
        .arg(c.dir.path())
        .output()
        .unwrap();
    // Root with the packages installed: a cluster that does not start is a failure.
    assert!(
        st.status.success(),
        "ci/slurm-cluster.sh start failed: {}\n{}",
        String::from_utf8_lossy(&st.stderr),
        c.log_tail()
    );
    eprintln!("slurm cluster up in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(c)
}

/// This test's turn and a running cluster, or `None` after printing why not.
fn cluster_or_skip() -> Option<(std::sync::MutexGuard<'static, ()>, Cluster)> {
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    match start_cluster() {
        Ok(c) => Some((turn, c)),
        Err(reason) => {
            println!("SKIP: {reason}");
            None
        }
    }
}

/// `ddgsd-bench slurm ARGS --out res --cpus-per-task 1 --submit` on the
/// cluster: the array's and the check job's ids.
fn submit(p: &Project, c: &Cluster, args: &[&str]) -> (String, String) {
    let o = p
        .cmd(&["slurm"])
        .args(args)
        .args(["--out", "res", "--cpus-per-task", "1", "--submit"])
        .env("SLURM_CONF", c.conf())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}{}", stderr(&o), c.log_tail());
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| l.starts_with("array job"))
        .expect(&text);
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[2].to_string(), words[7].to_string())
}

/// Waits until job `id` has ended, whatever its state.
fn wait_ended(c: &Cluster, id: &str) {
    wait_for("the check job", Duration::from_secs(300), || {
        matches!(
            job_field(c, id, "JobState").as_deref(),
            Some("COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL")
        )
    });
}

/// Waits for the check job `check` of the results directory `dir`, which
/// must exit 0 (the verdict PASS); returns the scripts' logs.
fn check_passed(c: &Cluster, check: &str, dir: &Path) -> String {
    wait_ended(c, check);
    let logs = logs(dir);
    assert_eq!(
        job_field(c, check, "ExitCode").as_deref(),
        Some("0:0"),
        "{logs}"
    );
    logs
}

/// Every `.out` log of the Slurm scripts of a results directory.
fn logs(dir: &Path) -> String {
    std::fs::read_dir(dir.join("slurm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "out"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn array_of_two_workers_with_a_requeue_matches_a_straight_run() {
    let Some((_turn, cluster)) = cluster_or_skip() else {
        return;
    };
    let t_test = Instant::now();
    let p = Project::new();
    p.write(
        "suites/t.toml",
        &tiny_suite("t", &["baseline"], &[0, 1], 8, ""),
    );
    let a = p.run(&["run", "suites/t.toml", "--no-check", "--out", "straight"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    let straight = p.records("straight", "t");
    expected_from(&p, "t", &straight, 50.0, "");

    let (array, check) = submit(&p, &cluster, &["suites/t.toml", "--array", "2"]);

    // Requeue the task that holds the first run to checkpoint, mid-run.
    let dir = p.path().join("res/t");
    let runs = ["resnet8w4__baseline__s0", "resnet8w4__baseline__s1"];
    let mut requeued = None;
    wait_for("a checkpoint", Duration::from_secs(180), || {
        requeued = runs.iter().find(|r| {
            dir.join(r).join("checkpoint/state.json").exists()
                && dir.join(r).join("lease.json").exists()
        });
        requeued.is_some()
    });
    let run = *requeued.unwrap();
    let lease: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(run).join("lease.json")).unwrap()).unwrap();
    let task = lease["slurm_task"]
        .as_str()
        .expect("the lease names its Slurm task")
        .to_string();
    assert!(task.starts_with(&format!("{array}_")), "{task}");
    let rq = Command::new("scontrol")
        .args(["requeue", &task])
        .env("SLURM_CONF", cluster.conf())
        .output()
        .unwrap();
    assert!(
        rq.status.success(),
        "scontrol requeue {task}: {}",
        String::from_utf8_lossy(&rq.stderr)
    );
    assert!(
        !dir.join(run).join("record.json").exists(),
        "the run ended before the requeue; make it longer"
    );
    // Slurm holds a requeued job back for a while (its begin time is pushed
    // out); make it eligible now so the test does not idle.
    wait_for(
        "the requeued task to be pending",
        Duration::from_secs(60),
        || job_field(&cluster, &task, "JobState").as_deref() == Some("PENDING"),
    );
    eprintln!(
        "requeued {task}: eligible at {:?}",
        job_field(&cluster, &task, "EligibleTime")
    );
    let up = Command::new("scontrol")
        .args(["update", &format!("JobId={task}"), "StartTime=now"])
        .env("SLURM_CONF", cluster.conf())
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    wait_ended(&cluster, &check);
    let exit = job_field(&cluster, &check, "ExitCode").unwrap();
    let logs = logs(&dir);
    let check_out = std::fs::read_to_string(dir.join(format!("slurm/check-{check}.out"))).unwrap();
    assert_eq!(
        exit, "0:0",
        "the verdict is PASS, so the check job exits 0\n{check_out}\n{logs}"
    );
    assert!(check_out.contains("Verdict: PASS"), "{check_out}");
    assert!(
        logs.contains("restart 1"),
        "the requeued task ran again:\n{logs}"
    );
    // Every run trained to the end exactly once, with the straight run's hash.
    for r in &straight {
        let id = r["run_id"].as_str().unwrap();
        assert_eq!(
            logs.matches(&format!("{id} done:")).count(),
            1,
            "{id}\n{logs}"
        );
        let rec = read_record(&dir, id);
        assert_eq!(rec["checkpoint_sha256"], r["checkpoint_sha256"], "{id}");
        if id == run {
            assert_eq!(
                rec["timing"]["resumed"], true,
                "{id} resumed from its checkpoint"
            );
        }
    }
    assert!(!Path::new(&dir.join(run).join("lease.json")).exists());
    eprintln!("slurm test body: {:.1}s", t_test.elapsed().as_secs_f64());
}

/// `slurm --ranks-per-run 2`: one array task, srun starts rank 0 and rank 1,
/// which join one gloo group from Slurm's environment (SLURM_PROCID,
/// SLURM_STEP_NUM_TASKS, the first host of the node list); the runs have the
/// hashes of `run --ranks 2` on this machine, and the check job passes.
#[test]
fn ranks_per_run_through_srun_match_local_ranks() {
    let Some((_turn, cluster)) = cluster_or_skip() else {
        return;
    };
    let p = Project::new();
    let suite = tiny_suite("dp", &["ddgsd"], &[0, 1], 2, "collective_timeout = 60")
        .replace("threads = 2", "threads = 1");
    p.write("suites/dp.toml", &suite);
    let a = p.run(&[
        "run",
        "suites/dp.toml",
        "--no-check",
        "--ranks",
        "2",
        "--out",
        "local",
    ]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    let local = p.records("local", "dp");
    expected_from(&p, "dp", &local, 50.0, "");
    let (_, check) = submit(
        &p,
        &cluster,
        &["suites/dp.toml", "--array", "1", "--ranks-per-run", "2"],
    );
    let dir = p.path().join("res/dp");
    let worker = std::fs::read_to_string(dir.join("slurm/worker.sbatch")).unwrap();
    assert!(
        worker.contains("#SBATCH --ntasks=2") && worker.contains("exec srun"),
        "{worker}"
    );
    let logs = check_passed(&cluster, &check, &dir);
    for r in &local {
        let id = r["run_id"].as_str().unwrap();
        let rec = read_record(&dir, id);
        assert_eq!(
            rec["checkpoint_sha256"], r["checkpoint_sha256"],
            "{id}\n{logs}"
        );
        assert_eq!(rec["env"]["world_size"], 2);
        let ranks = rec["env"]["ranks"].as_array().unwrap();
        assert_ne!(ranks[0]["pid"], ranks[1]["pid"], "two processes: {ranks:?}");
    }
}

#[test]
fn students_wait_for_their_teachers_in_the_array_and_match_a_straight_run() {
    let Some((_turn, cluster)) = cluster_or_skip() else {
        return;
    };
    let p = Project::new();
    p.write(
        "suites/td.toml",
        &tiny_suite("td", &["tf_kd_self", "baseline"], &[0, 1], 3, ""),
    );
    let a = p.run(&["run", "suites/td.toml", "--no-check", "--out", "straight"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    let straight = p.records("straight", "td");
    expected_from(&p, "td", &straight, 50.0, "");
    // Three workers for four runs: two students wait on the shared
    // directory for the teachers the other tasks train.
    let (_, check) = submit(&p, &cluster, &["suites/td.toml", "--array", "3"]);
    let dir = p.path().join("res/td");
    let worker = std::fs::read_to_string(dir.join("slurm/worker.sbatch")).unwrap();
    assert!(worker.contains("--no-check --wait"), "{worker}");
    let logs = check_passed(&cluster, &check, &dir);
    for r in &straight {
        let id = r["run_id"].as_str().unwrap();
        let rec = read_record(&dir, id);
        assert_eq!(
            rec["checkpoint_sha256"], r["checkpoint_sha256"],
            "{id}\n{logs}"
        );
        assert_eq!(
            logs.matches(&format!("{id} done: top1")).count(),
            1,
            "{id} trained once\n{logs}"
        );
        if let Some(t) = rec["config"]["teacher"]["run"].as_str() {
            let teacher = read_record(&dir, t);
            assert_eq!(
                rec["config"]["teacher"]["checkpoint_sha256"],
                teacher["checkpoint_sha256"]
            );
        }
    }
}
