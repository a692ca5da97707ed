//! `run --workers LIST`: one worker process per entry (`cpu`, `cuda:N`; an
//! entry may repeat) on the same results directory. The workers are this
//! same binary; they share the runs through leases (see `lease`). Each
//! sees only its GPU (`CUDA_VISIBLE_DEVICES`), so its config and results
//! are those of a single worker. The parent shows one line per worker,
//! forwards Ctrl-C / SIGTERM once to every worker (each checkpoints), and
//! checks the suite when every run is finished.
use crate::schedule::runner::STOP;
use crate::util::error::InputError;
use anyhow::{bail, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// One entry of `--workers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Cpu,
    Cuda(usize),
    /// The devices of one data-parallel worker's ranks (`--ranks N`
    /// groups N consecutive entries).
    Ranks(Vec<Entry>),
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Entry::Cpu => write!(f, "cpu"),
            Entry::Cuda(i) => write!(f, "cuda:{i}"),
            Entry::Ranks(v) => {
                let names: Vec<String> = v.iter().map(|e| e.to_string()).collect();
                write!(f, "{}", names.join("+"))
            }
        }
    }
}

/// Parses `cpu,cuda:0,cuda:0`.
pub fn parse_list(s: &str) -> Result<Vec<Entry>> {
    let entries = s
        .split(',')
        .map(|e| match e.trim() {
            "cpu" => Ok(Entry::Cpu),
            e => e
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Entry::Cuda)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--workers `{s}`: entry `{e}`: expected cpu or cuda:N, e.g. cuda:0,cuda:1"
                    )
                }),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(entries)
}

/// Every `ranks` consecutive entries as one worker of that many ranks.
pub fn group_ranks(entries: Vec<Entry>, ranks: usize) -> Result<Vec<Entry>> {
    if ranks <= 1 {
        return Ok(entries);
    }
    if entries.len() % ranks != 0 {
        bail!(
            "--workers lists {} devices, not a multiple of --ranks {ranks} (every {ranks} consecutive entries form one data-parallel worker)",
            entries.len()
        );
    }
    Ok(entries
        .chunks(ranks)
        .map(|c| Entry::Ranks(c.to_vec()))
        .collect())
}

/// `CUDA_VISIBLE_DEVICES` for a worker: its GPU among the parent's visible
/// ones (its ranks' GPUs), or none for a CPU worker.
pub fn visible_devices(entry: &Entry, parent: Option<&str>) -> String {
    match entry {
        Entry::Ranks(v) => {
            let ds: Vec<String> = v
                .iter()
                .map(|e| visible_devices(e, parent))
                .filter(|d| !d.is_empty())
                .collect();
            ds.join(",")
        }
        Entry::Cpu => String::new(),
        Entry::Cuda(i) => match parent.filter(|p| !p.trim().is_empty()) {
            Some(p) => p
                .split(',')
                .nth(*i)
                .map(|d| d.trim().to_string())
                .unwrap_or_else(|| i.to_string()),
            None => i.to_string(),
        },
    }
}

/// Sends every line of a child's piped stderr, tagged `i`, from a thread.
pub fn send_lines(child: &mut Child, i: usize, tx: std::sync::mpsc::Sender<(usize, String)>) {
    let stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send((i, line)).is_err() {
                break;
            }
        }
    });
}

/// How the workers ended.
pub enum Ended {
    /// Every worker exited 0.
    Done,
    /// Stopped by Ctrl-C / SIGTERM; every worker checkpointed.
    Interrupted,
}

/// Starts one worker per entry with `args` (a `run` command line without
/// `--workers`) and waits for all of them.
pub fn run(entries: &[Entry], args: &[String], resume_cmd: &str) -> Result<Ended> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this binary to start workers: {e}"))?;
    let parent_visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    crate::schedule::runner::install_signal_handlers();
    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    let mut children: Vec<(Child, String)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let label = format!("w{} {e}", i + 1);
        let mut c = Command::new(&exe);
        c.args(args)
            .args(["--worker-label", &label])
            .env(
                "CUDA_VISIBLE_DEVICES",
                visible_devices(e, parent_visible.as_deref()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Own process group: a terminal's Ctrl-C reaches the parent only,
        // which forwards exactly one signal (a second one would kill).
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c
            .spawn()
            .map_err(|err| InputError::new(&exe, None, format!("cannot start a worker: {err}")))?;
        send_lines(&mut child, i, tx.clone());
        children.push((child, label));
    }
    drop(tx);
    let mut display = Display::new(children.iter().map(|c| c.1.clone()).collect());
    let mut codes: Vec<Option<i32>> = vec![None; children.len()];
    let mut last_error: Vec<Option<String>> = vec![None; children.len()];
    let mut forwarded = false;
    loop {
        if STOP.load(Ordering::SeqCst) && !forwarded {
            forwarded = true;
            for (c, _) in &children {
                // SAFETY: plain kill(2) on our own child.
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            }
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((i, line)) => {
                if line.contains("error:") {
                    last_error[i] = Some(line.clone());
                }
                display.line(i, &line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // Every stderr closed: collect the exit codes.
                for (k, (c, _)) in children.iter_mut().enumerate() {
                    codes[k] = Some(c.wait()?.code().unwrap_or(130));
                }
                break;
            }
        }
    }
    display.close();
    let stopped = forwarded || codes.contains(&Some(130));
    for (k, code) in codes.iter().enumerate() {
        let code = code.unwrap_or(2);
        if code != 0 && code != 130 {
            bail!(
                "worker {} exited with {code}: {}",
                children[k].1,
                last_error[k].as_deref().unwrap_or("(no error line)")
            );
        }
    }
    if stopped {
        eprintln!("ddgsd-bench: interrupted; every worker checkpointed. Resume with: {resume_cmd}");
        return Ok(Ended::Interrupted);
    }
    Ok(Ended::Done)
}

/// `run --workers`: validates the suite and the expected file, starts the
/// workers, then (when every run of the suite is finished) checks it.
pub fn run_suite(
    suite: &crate::suite::ResolvedSuite,
    opts: &crate::schedule::runner::RunOptions,
    entries: &[Entry],
    overrides: &crate::suite::resolve::Overrides,
) -> Result<crate::schedule::runner::SuiteOutcome> {
    use crate::schedule::runner::SuiteOutcome;
    let expected = crate::schedule::runner::expected_for(suite, opts)?;
    crate::results::check_suite_dir(&opts.out, suite)?;
    let abs = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut args = vec![
        "run".to_string(),
        abs(&suite.file).display().to_string(),
        "--out".into(),
        abs(&opts.out).display().to_string(),
        "--no-check".into(),
        "--lease-timeout".into(),
        opts.lease_timeout.as_secs_f64().to_string(),
    ];
    if let Some(t) = overrides.threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    if let Some(d) = &overrides.device {
        args.extend(["--device".into(), d.clone()]);
    }
    if let Some(n) = overrides.world_size {
        args.extend(["--ranks".into(), n.to_string()]);
    }
    if let Some(p) = opts.partition {
        args.extend(["--partition".into(), format!("hash:{}/{}", p.m, p.n)]);
    }
    if opts.wait {
        args.push("--wait".into());
    }
    let list: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
    let resume = format!(
        "ddgsd-bench run {} --out {} --workers {}",
        suite.file.display(),
        opts.out.display(),
        list.join(",")
    );
    eprintln!(
        "ddgsd-bench: suite `{}`: {} workers ({}) on {}",
        suite.name,
        entries.len(),
        list.join(", "),
        opts.out.join(&suite.name).display()
    );
    match run(entries, &args, &resume)? {
        Ended::Interrupted => Ok(SuiteOutcome::Interrupted),
        Ended::Done => crate::schedule::runner::conclude(suite, opts, expected),
    }
}

/// One line per worker on a terminal (redrawn in place; finished runs and
/// errors scroll above), or every line prefixed with its worker otherwise.
struct Display {
    labels: Vec<String>,
    status: Vec<String>,
    tty: bool,
    drawn: bool,
}

impl Display {
    fn new(labels: Vec<String>) -> Self {
        let n = labels.len();
        Display {
            labels,
            status: vec!["starting".into(); n],
            tty: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    fn line(&mut self, i: usize, line: &str) {
        let mut err = std::io::stderr().lock();
        let text = format!("[{}] {}", self.labels[i], line.trim_start_matches('\r'));
        if !self.tty {
            let _ = writeln!(err, "{text}");
            return;
        }
        let lasting = [
            "done:",
            "error",
            "warning",
            "interrupted",
            "nothing left",
            "Resume",
        ]
        .iter()
        .any(|k| line.contains(k));
        if self.drawn {
            let _ = write!(err, "\x1b[{}A\x1b[J", self.labels.len());
        }
        if lasting {
            let _ = writeln!(err, "{text}");
        }
        self.status[i] = line.to_string();
        for (l, s) in self.labels.iter().zip(&self.status) {
            let mut row = format!("[{l}] {s}");
            row.truncate(160);
            let _ = writeln!(err, "{row}");
        }
        self.drawn = true;
    }

    fn close(&mut self) {
        let _ = std::io::stderr().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(
            parse_list("cuda:0,cuda:0,cpu").unwrap(),
            vec![Entry::Cuda(0), Entry::Cuda(0), Entry::Cpu]
        );
        for bad in ["gpu", "cuda", "cuda:x", "", "cpu,,cpu"] {
            assert!(parse_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn visible_devices_map_through_the_parents() {
        assert_eq!(visible_devices(&Entry::Cpu, Some("0,1")), "");
        assert_eq!(visible_devices(&Entry::Cuda(1), None), "1");
        assert_eq!(visible_devices(&Entry::Cuda(1), Some("4,6")), "6");
        assert_eq!(visible_devices(&Entry::Cuda(0), Some("")), "0");
        let g = group_ranks(parse_list("cuda:0,cuda:1,cuda:2,cuda:3").unwrap(), 2).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].to_string(), "cuda:2+cuda:3");
        assert_eq!(visible_devices(&g[1], Some("4,5,6,7")), "6,7");
        assert_eq!(
            visible_devices(
                &group_ranks(parse_list("cpu,cpu").unwrap(), 2).unwrap()[0],
                None
            ),
            ""
        );
        assert!(group_ranks(parse_list("cuda:0,cuda:1,cuda:2").unwrap(), 2).is_err());
    }
}
