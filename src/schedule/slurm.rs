//! `ddgsd-bench slurm`: two batch scripts under `<out>/<suite>/slurm/`.
//! `worker.sbatch` is a job array whose every task is a worker on the
//! shared results directory (leases balance uneven runs); it is
//! requeue-safe (a requeued task resumes its run from the checkpoint, and
//! takes its own earlier lease over at once) and gets SIGTERM two minutes
//! before its time limit so it checkpoints. `check.sbatch` runs after the
//! array (`--dependency=afterany:<array job>`), checks, writes the table
//! and exits with the verdict.
//!
//! Where runs depend on runs (a student after its teacher), every worker
//! runs with `--wait`: with nothing else to claim it waits on the shared
//! directory for the teacher another task trains (and takes a dead task's
//! teacher over) rather than stopping; the suite's order puts teachers
//! first, so the first tasks take them.
//!
//! With `ranks_per_run` = N each array task is one data-parallel worker:
//! `--ntasks=N` (over `--nodes` K when given) and `srun` starting the N
//! ranks of `ddgsd-bench run --ranks N`, which join one group from Slurm's
//! environment and train the runs one at a time (rank 0 holds the leases).
use crate::schedule::command::sh_quote;
use crate::util::error::InputError;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct SlurmOptions {
    pub suite_file: PathBuf,
    pub suite_name: String,
    pub out: PathBuf,
    pub expected: Option<PathBuf>,
    pub array: u32,
    pub gpus_per_task: Option<u32>,
    pub cpus_per_task: Option<u32>,
    pub time: Option<String>,
    pub sbatch_args: Vec<String>,
    pub threads: Option<usize>,
    pub lease_timeout: Option<f64>,
    /// Ranks of every data-parallel run (tasks per array task, one srun).
    pub ranks_per_run: Option<u32>,
    /// Nodes per array task (with `ranks_per_run`).
    pub nodes: Option<u32>,
    /// Runs in the suite's plan (more workers than runs would sit idle).
    pub runs: usize,
    /// The cluster's MaxArraySize (task indices are 1..=array, so array <
    /// MaxArraySize).
    pub max_array_size: u32,
    /// Some run trains after another (its teacher): each worker then waits
    /// on the shared directory (`run --wait`) for a teacher another task
    /// trains, and takes it over if that task dies, instead of stopping.
    pub wait_for_teachers: bool,
}

/// Slurm's default MaxArraySize.
pub const DEFAULT_MAX_ARRAY_SIZE: u32 = 1001;

/// The cluster's MaxArraySize from `scontrol show config`, or Slurm's
/// default where scontrol does not answer.
pub fn max_array_size() -> u32 {
    let out = Command::new("scontrol").args(["show", "config"]).output();
    out.ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
            })
        })
        .unwrap_or(DEFAULT_MAX_ARRAY_SIZE)
}

/// A time limit as sbatch takes it: `minutes`, `minutes:seconds`,
/// `hours:minutes:seconds`, `days-hours`, `days-hours:minutes`,
/// `days-hours:minutes:seconds`, or `UNLIMITED` / `INFINITE`.
pub fn valid_time(t: &str) -> bool {
    if ["unlimited", "infinite"].contains(&t.to_ascii_lowercase().as_str()) {
        return true;
    }
    let num = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if days.is_some_and(|d| !num(d)) || !parts.iter().all(|p| num(p)) {
        return false;
    }
    (1..=3).contains(&parts.len())
}

fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

pub struct Scripts {
    pub dir: PathBuf,
    pub worker: PathBuf,
    pub check: PathBuf,
}

fn header(lines: &mut Vec<String>, o: &SlurmOptions) {
    if let Some(c) = o.cpus_per_task {
        lines.push(format!("#SBATCH --cpus-per-task={c}"));
    }
    if let Some(t) = &o.time {
        lines.push(format!("#SBATCH --time={}", sh_quote(t)));
    }
    for a in &o.sbatch_args {
        lines.push(format!("#SBATCH {a}"));
    }
}

/// The text of the two scripts: (worker, check).
pub fn render(o: &SlurmOptions, exe: &Path, cwd: &Path) -> Result<(String, String)> {
    if o.array == 0 {
        bail!("--array 0: expected at least one task");
    }
    if o.gpus_per_task == Some(0) {
        bail!("--gpus-per-task 0: expected at least 1 (leave it out for CPU tasks)");
    }
    let ranks = o.ranks_per_run.filter(|&n| n > 1);
    if o.ranks_per_run == Some(0) {
        bail!("--ranks-per-run 0: expected at least 1");
    }
    if o.nodes.is_some() && ranks.is_none() {
        bail!("--nodes: only with --ranks-per-run N (the nodes a data-parallel run spreads over)");
    }
    if let (Some(k), Some(n)) = (o.nodes, ranks) {
        if k == 0 || k > n {
            bail!("--nodes {k}: expected 1 to {n} nodes for --ranks-per-run {n}");
        }
    }
    if ranks.is_some() && o.gpus_per_task.is_some_and(|g| g > 1) {
        bail!("--gpus-per-task with --ranks-per-run: every rank is one Slurm task with its own GPU; use --gpus-per-task 1");
    }
    if o.cpus_per_task == Some(0) {
        bail!("--cpus-per-task 0: expected at least 1 (leave it out for the cluster's default)");
    }
    if o.threads == Some(0) {
        bail!("--threads 0: expected at least 1");
    }
    if let Some(t) = o.time.as_deref().filter(|t| !valid_time(t)) {
        bail!("--time `{t}`: expected minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes or days-hours:minutes:seconds (e.g. 24:00:00 or 2-00:00:00)");
    }
    if let Some(t) = o.lease_timeout {
        crate::schedule::lease::timeout(Some(t))?;
    }
    let workers = o.array as usize * o.gpus_per_task.unwrap_or(1).max(1) as usize;
    if workers > o.runs {
        let per = match o.gpus_per_task.filter(|&g| g > 1) {
            Some(g) => format!(" x --gpus-per-task {g} = {workers} workers"),
            None => " tasks".into(),
        };
        bail!(
            "--array {}{per} for a plan of {} runs: {} would sit idle; use at most {} tasks",
            o.array,
            o.runs,
            workers - o.runs,
            (o.runs / (workers / o.array as usize)).max(1)
        );
    }
    if o.array >= o.max_array_size {
        bail!(
            "--array {}: the cluster's MaxArraySize is {} (task indices 1..{} must stay below it)",
            o.array,
            o.max_array_size,
            o.array
        );
    }
    if let Some(a) = o.sbatch_args.iter().find(|a| !a.starts_with('-')) {
        bail!("--sbatch-arg `{a}`: expected an sbatch option such as --partition=gpu");
    }
    let slurm_dir = abs(&o.out).join(&o.suite_name).join("slurm");
    let q = |p: &Path| sh_quote(&p.display().to_string());
    let mut common = vec![
        q(exe),
        "run".into(),
        q(&abs(&o.suite_file)),
        "--out".into(),
        q(&abs(&o.out)),
        "--no-check".into(),
    ];
    if let Some(t) = o.threads {
        common.push(format!("--threads {t}"));
    }
    if let Some(t) = o.lease_timeout {
        common.push(format!("--lease-timeout {t}"));
    }
    if let Some(n) = ranks {
        common.push(format!("--ranks {n}"));
    }
    if o.wait_for_teachers {
        common.push("--wait".into());
    }
    if let Some(g) = o.gpus_per_task.filter(|&g| g > 1) {
        // One worker per GPU of the task (each sees its own through CUDA_VISIBLE_DEVICES).
        let list: Vec<String> = (0..g).map(|i| format!("cuda:{i}")).collect();
        common.push(format!("--workers {}", list.join(",")));
    } else {
        common.push("--worker-label \"slurm ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"".into());
    }
    let mut w = vec![
        "#!/bin/bash".to_string(),
        format!(
            "# Written by ddgsd-bench slurm: {} workers on one results directory.",
            o.array
        ),
        format!("#SBATCH --job-name=ddgsd-{}", o.suite_name),
        format!("#SBATCH --array=1-{}", o.array),
        "#SBATCH --requeue".into(),
        "#SBATCH --open-mode=append".into(),
        format!("#SBATCH --output={}/worker-%A_%a.out", q(&slurm_dir)),
        format!("#SBATCH --chdir={}", q(cwd)),
        "#SBATCH --signal=B:TERM@120".into(),
    ];
    if let Some(n) = ranks {
        w.push(format!("#SBATCH --ntasks={n}"));
        if let Some(k) = o.nodes {
            w.push(format!("#SBATCH --nodes={k}"));
        }
    }
    if let Some(g) = o.gpus_per_task {
        w.push(format!("#SBATCH --gpus-per-task={g}"));
    }
    header(&mut w, o);
    w.push("set -eu".into());
    w.push("echo \"ddgsd-bench worker ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname), restart ${SLURM_RESTART_COUNT:-0}, CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-}\" >&2".into());
    // exec: the worker itself gets Slurm's SIGTERM and checkpoints (srun
    // forwards it to every rank; the ranks stop at one step).
    match ranks {
        Some(_) => w.push(format!(
            "exec srun --kill-on-bad-exit=0 {}",
            common.join(" ")
        )),
        None => w.push(format!("exec {}", common.join(" "))),
    }
    let mut c = vec![
        "#!/bin/bash".to_string(),
        "# Written by ddgsd-bench slurm: checks the suite after the worker array; exits with the verdict (0 pass, 1 out of band, 2 input, 3 no verdict: runs unfinished, submit the scripts again).".into(),
        format!("#SBATCH --job-name=ddgsd-{}-check", o.suite_name),
        format!("#SBATCH --output={}/check-%j.out", q(&slurm_dir)),
        format!("#SBATCH --chdir={}", q(cwd)),
        "#SBATCH --ntasks=1".into(),
    ];
    c.extend(o.sbatch_args.iter().map(|a| format!("#SBATCH {a}")));
    c.push("set -eu".into());
    // A requeued (preempted) task ends before it pends again, which already
    // satisfies afterany: so wait until no task of the array (its job id is
    // the first argument, given by `--submit`) is left in the queue.
    c.push("if [ -n \"${1:-}\" ]; then".into());
    c.push("  while squeue -h -j \"$1\" -o %i 2>/dev/null | grep -q .; do sleep 5; done".into());
    c.push("fi".into());
    let mut check = vec![q(exe), "check".into(), q(&abs(&o.out).join(&o.suite_name))];
    if let Some(e) = &o.expected {
        check.push(format!("--expected {}", q(&abs(e))));
    }
    c.push(format!("exec {}", check.join(" ")));
    if let Some(e) = &o.expected {
        // The workers do not read it, but a wrong path should fail now.
        if !e.exists() {
            bail!(InputError::new(e, None, "expected file not found"));
        }
    }
    Ok((w.join("\n") + "\n", c.join("\n") + "\n"))
}

/// Writes the scripts (atomically, executable).
pub fn write(o: &SlurmOptions) -> Result<Scripts> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let (w, c) = render(o, &exe, &cwd)?;
    let dir = o.out.join(&o.suite_name).join("slurm");
    std::fs::create_dir_all(&dir)
        .map_err(|e| InputError::new(&dir, None, format!("cannot create: {e}")))?;
    let (worker, check) = (dir.join("worker.sbatch"), dir.join("check.sbatch"));
    for (p, text) in [(&worker, w), (&check, c)] {
        crate::util::atomic::write(p, text.as_bytes())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(Scripts { dir, worker, check })
}

/// `sbatch --parsable` one script; returns the job id.
pub fn sbatch(script: &Path, extra: &[String], script_args: &[String]) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(extra)
        .arg(script)
        .args(script_args)
        .output()
        .map_err(|e| anyhow::anyhow!("sbatch: cannot run it ({e}); is Slurm installed here?"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "sbatch {}: {}",
            script.display(),
            err.lines().next().unwrap_or("failed").trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        bail!(
            "sbatch {}: unexpected answer `{}`",
            script.display(),
            text.trim()
        );
    }
    Ok(id)
}

/// Submits the array, then the check job after it; returns both job ids.
pub fn submit(s: &Scripts) -> Result<(String, String)> {
    let array = sbatch(&s.worker, &[], &[])?;
    let check = sbatch(
        &s.check,
        &[format!("--dependency=afterany:{array}")],
        std::slice::from_ref(&array),
    )?;
    Ok((array, check))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SlurmOptions {
        SlurmOptions {
            suite_file: "/s/suite.toml".into(),
            suite_name: "t".into(),
            out: "/r".into(),
            expected: None,
            array: 3,
            gpus_per_task: None,
            cpus_per_task: Some(2),
            time: Some("1:00:00".into()),
            sbatch_args: vec!["--partition=gpu".into()],
            threads: None,
            lease_timeout: None,
            ranks_per_run: None,
            nodes: None,
            runs: 12,
            max_array_size: DEFAULT_MAX_ARRAY_SIZE,
            wait_for_teachers: false,
        }
    }

    #[test]
    fn worker_and_check_scripts() {
        let (w, c) = render(&opts(), Path::new("/bin/ddgsd bench"), Path::new("/w")).unwrap();
        for l in [
            "#SBATCH --array=1-3",
            "#SBATCH --requeue",
            "#SBATCH --cpus-per-task=2",
            "#SBATCH --time=1:00:00",
            "#SBATCH --partition=gpu",
            "#SBATCH --signal=B:TERM@120",
            "#SBATCH --output=/r/t/slurm/worker-%A_%a.out",
        ] {
            assert!(w.lines().any(|x| x == l), "{l} not in\n{w}");
        }
        assert!(w.contains("exec '/bin/ddgsd bench' run /s/suite.toml --out /r --no-check"));
        assert!(!w.contains("--workers"));
        assert!(!w.contains("--wait"));
        let mut o = opts();
        o.wait_for_teachers = true;
        let (wt, _) = render(&o, Path::new("/b"), Path::new("/w")).unwrap();
        assert!(
            wt.contains("/b run /s/suite.toml --out /r --no-check --wait"),
            "{wt}"
        );
        assert!(c.contains("exec '/bin/ddgsd bench' check /r/t\n"), "{c}");
        assert!(
            c.contains("squeue -h -j \"$1\""),
            "waits for requeued tasks: {c}"
        );
        assert!(c.contains("#SBATCH --partition=gpu"));
        let mut o = opts();
        o.gpus_per_task = Some(2);
        let (w, _) = render(&o, Path::new("/b"), Path::new("/w")).unwrap();
        assert!(w.contains("#SBATCH --gpus-per-task=2"));
        assert!(w.contains("--workers cuda:0,cuda:1"));
    }

    #[test]
    fn data_parallel_workers_are_srun_steps() {
        let mut o = opts();
        o.ranks_per_run = Some(4);
        o.nodes = Some(2);
        o.gpus_per_task = Some(1);
        let (w, _) = render(&o, Path::new("/b"), Path::new("/w")).unwrap();
        for l in [
            "#SBATCH --ntasks=4",
            "#SBATCH --nodes=2",
            "#SBATCH --gpus-per-task=1",
        ] {
            assert!(w.lines().any(|x| x == l), "{l} not in\n{w}");
        }
        assert!(
            w.contains(
                "exec srun --kill-on-bad-exit=0 /b run /s/suite.toml --out /r --no-check --ranks 4"
            ),
            "{w}"
        );
        assert!(!w.contains("--workers"));
        for (r, n, g) in [
            (Some(0), None, None),
            (None, Some(2), None),
            (Some(2), Some(3), None),
            (Some(2), None, Some(2)),
        ] {
            let mut o = opts();
            (o.ranks_per_run, o.nodes, o.gpus_per_task) = (r, n, g);
            assert!(
                render(&o, Path::new("/b"), Path::new("/w")).is_err(),
                "{r:?} {n:?} {g:?}"
            );
        }
    }

    #[test]
    fn bad_options() {
        let bad = |f: &dyn Fn(&mut SlurmOptions)| {
            let mut o = opts();
            f(&mut o);
            render(&o, Path::new("/b"), Path::new("/w"))
                .unwrap_err()
                .to_string()
        };
        assert!(bad(&|o| o.array = 0).contains("--array 0"));
        assert!(bad(&|o| o.cpus_per_task = Some(0)).contains("--cpus-per-task 0"));
        assert!(bad(&|o| o.time = Some("bogus".into())).contains("--time `bogus`"));
        assert!(bad(&|o| o.lease_timeout = Some(-1.0)).contains("--lease-timeout"));
        let e = bad(&|o| o.array = 13);
        assert!(e.contains("plan of 12 runs: 1 would sit idle"), "{e}");
        let e = bad(&|o| {
            o.array = 7;
            o.gpus_per_task = Some(2);
        });
        assert!(
            e.contains("14 workers") && e.contains("at most 6 tasks"),
            "{e}"
        );
        let e = bad(&|o| {
            o.runs = 5000;
            o.array = 1001;
        });
        assert!(e.contains("MaxArraySize is 1001"), "{e}");
        for t in [
            "90",
            "90:30",
            "1:00:00",
            "2-12",
            "2-12:30",
            "2-12:30:00",
            "UNLIMITED",
        ] {
            assert!(valid_time(t), "{t}");
        }
        for t in ["", "1:2:3:4", "x", "-1", "1-", "2-1:2:3:4", "1h"] {
            assert!(!valid_time(t), "{t}");
        }
        let mut o = opts();
        o.array = 0;
        assert!(render(&o, Path::new("/b"), Path::new("/w")).is_err());
        let mut o = opts();
        o.sbatch_args = vec!["partition=gpu".into()];
        assert!(render(&o, Path::new("/b"), Path::new("/w")).is_err());
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
