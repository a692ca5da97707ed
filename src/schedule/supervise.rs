//! The worker processes of `run --workers`: started (each in its own
//! process group, seeing only its GPU), reaped as they exit, their stderr
//! shown one line per worker. Ctrl-C / SIGTERM reaches every worker once
//! (each checkpoints). A worker that dies by a signal this process did not
//! send (the OOM killer, a crash, a `kill`) is reported with the signal and
//! the run it held, and a new worker on the same entry takes that run over
//! from its checkpoint (at most [`RESTARTS`] times per entry).
use crate::schedule::lease;
use crate::schedule::runner::{install_signal_handlers, STOP};
use crate::schedule::workers::{visible_devices, Entry};
use crate::train::run_state::{TrainState, CHECKPOINT_DIR, STATE_FILE};
use crate::util::error::InputError;
use crate::util::exit::Exit;
use anyhow::{bail, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

/// New workers started on one entry after deaths, at most.
pub const RESTARTS: u32 = 2;

/// A worker that died by a signal nobody here sent.
#[derive(Debug, Clone)]
pub struct Death {
    pub label: String,
    pub pid: u32,
    /// `signal 9 (SIGKILL)`, or how it stopped.
    pub how: String,
    /// The run it held, with its last checkpoint.
    pub run: Option<String>,
}

impl std::fmt::Display for Death {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "worker {} (pid {}) {}", self.label, self.pid, self.how)?;
        match &self.run {
            Some(r) => write!(f, ", while it held {r}"),
            None => write!(f, ", holding no run"),
        }
    }
}

/// How the workers ended.
pub enum Ended {
    /// Every worker ended without an error (some may have died and been
    /// replaced: `deaths`).
    Done { deaths: Vec<Death> },
    /// Stopped by Ctrl-C / SIGTERM; every worker checkpointed.
    Interrupted,
}

/// `signal 9 (SIGKILL)`.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => return format!("signal {sig}"),
    };
    format!("signal {sig} ({name})")
}

/// The run a worker (pid on this host) holds a lease on in `dir`, with its
/// last checkpoint.
fn held_by(dir: &Path, pid: u32) -> Option<String> {
    let host = lease::hostname();
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    let run = runs.into_iter().find(|r| {
        lease::read(r)
            .ok()
            .flatten()
            .is_some_and(|l| l.pid == pid && l.host == host)
    })?;
    let id = run.file_name()?.to_string_lossy().into_owned();
    let ck = std::fs::read(run.join(CHECKPOINT_DIR).join(STATE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<TrainState>(&b).ok());
    Some(match ck {
        Some(st) => format!(
            "{id} (its last checkpoint: epoch {}, step {})",
            st.epoch + 1,
            st.step_in_epoch
        ),
        None => format!("{id} (no checkpoint yet: it restarts from the beginning)"),
    })
}

struct Slot {
    entry: Entry,
    label: String,
    child: Option<Child>,
    pid: u32,
    restarts: u32,
    last_error: Option<String>,
}

struct Spawner<'a> {
    exe: PathBuf,
    args: &'a [String],
    parent_visible: Option<String>,
    tx: Sender<(usize, String)>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Spawner<'_> {
    fn start(&mut self, i: usize, slot: &mut Slot) -> Result<()> {
        let lease_label = match slot.restarts {
            0 => slot.label.clone(),
            n => format!("{} (restart {n})", slot.label),
        };
        let mut c = Command::new(&self.exe);
        c.args(self.args)
            .args(["--worker-label", &lease_label])
            .env(
                "CUDA_VISIBLE_DEVICES",
                visible_devices(&slot.entry, self.parent_visible.as_deref()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if slot.entry.is_gpu() {
            c.arg("--worker-gpu");
        }
        // Own process group: a terminal's Ctrl-C reaches the parent only,
        // which forwards exactly one signal (a second one would kill).
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c.spawn().map_err(|err| {
            InputError::new(&self.exe, None, format!("cannot start a worker: {err}"))
        })?;
        self.readers
            .push(send_lines(&mut child, i, self.tx.clone()));
        slot.pid = child.id();
        slot.child = Some(child);
        Ok(())
    }
}

/// Sends every line of a child's piped stderr, tagged `i`, from a thread
/// (the workers here, the ranks of `run --ranks`).
pub fn send_lines(
    child: &mut Child,
    i: usize,
    tx: Sender<(usize, String)>,
) -> std::thread::JoinHandle<()> {
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
    })
}

/// What a worker's exit means here.
enum Exited {
    /// Done (0), or stopped with nothing left for it (3).
    Finished,
    /// Stopped by the signal this process forwarded.
    Interrupted,
    /// Killed, or stopped by a signal, that this process did not send.
    Died(String),
    /// An error (its last `error:` line says which).
    Failed(i32),
}

fn classify(status: ExitStatus, forwarded: bool) -> Exited {
    match (status.code().and_then(Exit::from_code), status.signal()) {
        (Some(Exit::Pass | Exit::NoVerdict), _) => Exited::Finished,
        (Some(Exit::Interrupted), _) | (None, Some(_)) if forwarded => Exited::Interrupted,
        (Some(Exit::Interrupted), _) => Exited::Died(
            "was stopped by a signal that ddgsd-bench did not send (it checkpointed)".into(),
        ),
        (None, Some(sig)) => Exited::Died(format!(
            "was killed by {}, which ddgsd-bench did not send",
            signal_name(sig)
        )),
        _ => Exited::Failed(status.code().unwrap_or(-1)),
    }
}

/// Starts one worker per entry with `args` (a `run` command line without
/// `--workers`) on the results directory `dir` and supervises them until
/// every one has ended.
pub fn run(entries: &[Entry], args: &[String], dir: &Path) -> Result<Ended> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this binary to start workers: {e}"))?;
    install_signal_handlers();
    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    let mut sp = Spawner {
        exe,
        args,
        parent_visible: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
        tx,
        readers: Vec::new(),
    };
    let mut slots: Vec<Slot> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| Slot {
            entry: e.clone(),
            label: format!("w{} {e}", i + 1),
            child: None,
            pid: 0,
            restarts: 0,
            last_error: None,
        })
        .collect();
    for (i, s) in slots.iter_mut().enumerate() {
        sp.start(i, s)?;
    }
    let mut display = Display::new(slots.iter().map(|s| s.label.clone()).collect());
    let (mut forwarded, mut interrupted) = (false, false);
    let mut deaths = Vec::new();
    let mut failed = Vec::new();
    loop {
        if STOP.load(Ordering::SeqCst) && !forwarded {
            forwarded = true;
            for c in slots.iter().filter_map(|s| s.child.as_ref()) {
                // SAFETY: plain kill(2) on our own child.
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            }
        }
        show(&rx, &mut slots, &mut display, Duration::from_millis(100));
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(status) = slot.child.as_mut().map(|c| c.try_wait()).transpose()? else {
                continue;
            };
            let Some(status) = status else { continue };
            slot.child = None; // reaped
            match classify(status, forwarded) {
                Exited::Finished => {}
                Exited::Interrupted => interrupted = true,
                Exited::Failed(code) => failed.push((i, code)),
                Exited::Died(how) => {
                    let s = &*slot;
                    let d = Death {
                        label: s.label.clone(),
                        pid: s.pid,
                        how,
                        run: held_by(dir, s.pid),
                    };
                    let again = !STOP.load(Ordering::SeqCst) && s.restarts < RESTARTS;
                    display.note(&format!(
                        "ddgsd-bench: {d}; {}",
                        if again {
                            format!("starting a new worker on {} to take its run over", s.entry)
                        } else {
                            format!("not restarting it ({RESTARTS} restarts already)")
                        }
                    ));
                    deaths.push(d);
                    if again {
                        slot.restarts += 1;
                        sp.start(i, slot)?;
                    }
                }
            }
        }
        if slots.iter().all(|s| s.child.is_none()) {
            break;
        }
    }
    drop(sp.tx);
    for r in sp.readers {
        let _ = r.join();
    }
    while show(&rx, &mut slots, &mut display, Duration::ZERO) > 0 {}
    display.close();
    if let Some(&(i, code)) = failed.first() {
        bail!(
            "worker {} exited with {code}: {}",
            slots[i].label,
            slots[i].last_error.as_deref().unwrap_or("(no error line)")
        );
    }
    if forwarded || interrupted {
        return Ok(Ended::Interrupted);
    }
    Ok(Ended::Done { deaths })
}

/// Shows the lines the workers wrote (waiting up to `wait` for the first),
/// at most a bounded batch, so that a chatty worker cannot keep the others
/// from being reaped; returns how many.
fn show(
    rx: &Receiver<(usize, String)>,
    slots: &mut [Slot],
    d: &mut Display,
    wait: Duration,
) -> usize {
    let mut next = rx.recv_timeout(wait).ok();
    let mut n = 0;
    while let Some((i, line)) = next.take() {
        if line.contains("error:") {
            slots[i].last_error = Some(line.clone());
        }
        d.line(i, &line);
        n += 1;
        if n < 1000 {
            next = rx.try_recv().ok();
        }
    }
    n
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

    /// A line of the supervisor itself, above the workers' lines.
    fn note(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty && self.drawn {
            let _ = write!(err, "\x1b[{}A\x1b[J", self.labels.len());
            self.drawn = false;
        }
        let _ = writeln!(err, "{text}");
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
            if let Some((cut, _)) = row.char_indices().nth(160) {
                row.truncate(cut);
            }
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
    fn exits_are_classified() {
        let code = |c: i32| ExitStatus::from_raw(c << 8);
        let sig = |s: i32| ExitStatus::from_raw(s);
        assert!(matches!(classify(code(0), false), Exited::Finished));
        assert!(matches!(classify(code(3), false), Exited::Finished));
        assert!(matches!(classify(code(2), false), Exited::Failed(2)));
        assert!(matches!(classify(code(130), true), Exited::Interrupted));
        assert!(matches!(classify(code(130), false), Exited::Died(_)));
        assert!(matches!(
            classify(sig(libc::SIGTERM), true),
            Exited::Interrupted
        ));
        match classify(sig(libc::SIGKILL), false) {
            Exited::Died(how) => assert!(how.contains("signal 9 (SIGKILL)"), "{how}"),
            _ => panic!("a SIGKILL nobody sent is a death"),
        }
    }
}
