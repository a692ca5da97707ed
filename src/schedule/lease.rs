//! Claims on runs, so any number of workers can share one results directory
//! (a local disk or NFS, where flock is unreliable).
//!
//! A worker claims a run by creating `<run dir>/lease.json` atomically: the
//! lease is written complete to a unique temporary file and hard-linked to
//! its name (`link` fails when the name exists, on NFS too). The holder
//! refreshes `heartbeat` from a thread (every `timeout / 4`, at most a
//! minute) and at every epoch end. A lease is stale when its holder is gone
//! (same host and the pid is dead, or an earlier incarnation of the same
//! Slurm array task) or its heartbeat is older than the timeout; a stale
//! lease is taken over race-free: the taker renames it to a unique name
//! (one rename wins), checks that what it moved is the lease it judged
//! stale (else it puts it back), then creates its own.
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const LEASE_FILE: &str = "lease.json";
/// Environment variable that sets the stale timeout in seconds.
pub const TIMEOUT_ENV: &str = "DDGSD_LEASE_TIMEOUT";
/// Default stale timeout: five missed one-minute heartbeats.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// What a lease file says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// Unique per claim: host, pid and a nonce.
    pub token: String,
    pub host: String,
    pub pid: u32,
    /// `SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID` (or `SLURM_JOB_ID`) when
    /// the holder runs under Slurm.
    pub slurm_task: Option<String>,
    /// Free text naming the worker (e.g. its device).
    pub worker: String,
    /// Unix seconds.
    pub started: f64,
    pub heartbeat: f64,
}

/// The outcome of [`try_claim`].
pub enum Claim {
    Acquired(Lease),
    /// Someone else holds a live lease.
    Held(LeaseInfo),
}

/// The stale timeout: `explicit` (a flag), else `DDGSD_LEASE_TIMEOUT`, else
/// [`DEFAULT_TIMEOUT`].
pub fn timeout(explicit: Option<f64>) -> Result<Duration> {
    let secs = match explicit {
        Some(s) => Some((s, "--lease-timeout".to_string())),
        None => match std::env::var(TIMEOUT_ENV) {
            Ok(v) => Some((
                v.trim().parse::<f64>().map_err(|_| {
                    anyhow::anyhow!("{TIMEOUT_ENV}=`{v}`: expected a number of seconds")
                })?,
                TIMEOUT_ENV.to_string(),
            )),
            Err(_) => None,
        },
    };
    match secs {
        None => Ok(DEFAULT_TIMEOUT),
        Some((s, _)) if s.is_finite() && s >= 1.0 => Ok(Duration::from_secs_f64(s)),
        Some((s, what)) => anyhow::bail!("{what} {s}: expected at least 1 second"),
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the result is NUL-terminated or truncated.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// This process's Slurm task, if it runs under Slurm.
pub fn slurm_task() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(j), Some(t)) => Some(format!("{j}_{t}")),
        _ => var("SLURM_JOB_ID"),
    }
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn unique_suffix() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}-{}-{}",
        hostname(),
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Reads a lease; `None` when there is none.
pub fn read(run_dir: &Path) -> Result<Option<LeaseInfo>> {
    let path = run_dir.join(LEASE_FILE);
    match std::fs::read(&path) {
        Ok(b) => Ok(serde_json::from_slice(&b).ok().or_else(|| {
            // Unreadable content (written by hand?): judged by its mtime.
            let mtime = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            Some(LeaseInfo {
                token: format!("unreadable-{mtime}"),
                host: String::new(),
                pid: 0,
                slurm_task: None,
                worker: "unreadable lease".into(),
                started: mtime,
                heartbeat: mtime,
            })
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
    }
}

/// Why a lease is stale, or `None` when it is live.
pub fn stale_reason(l: &LeaseInfo, timeout: Duration) -> Option<String> {
    let age = now() - l.heartbeat;
    if age > timeout.as_secs_f64() {
        return Some(format!(
            "last heartbeat {age:.0}s ago (timeout {:.0}s)",
            timeout.as_secs_f64()
        ));
    }
    if l.host == hostname() && l.pid != std::process::id() && !pid_alive(l.pid) {
        return Some(format!("pid {} on {} is gone", l.pid, l.host));
    }
    if l.slurm_task.is_some() && l.slurm_task == slurm_task() && l.pid != std::process::id() {
        return Some(format!(
            "held by an earlier run of this Slurm task {}",
            l.slurm_task.as_deref().unwrap_or("")
        ));
    }
    None
}

/// Writes `info` to a unique temporary file in `run_dir` and returns its path.
fn write_temp(run_dir: &Path, info: &LeaseInfo) -> Result<PathBuf> {
    let tmp = run_dir.join(format!(".lease-{}.tmp", unique_suffix()));
    let mut s = serde_json::to_string_pretty(info)?;
    s.push('\n');
    std::fs::write(&tmp, s).with_context(|| format!("{}: cannot write", tmp.display()))?;
    Ok(tmp)
}

/// Creates the lease from a complete temporary file; false when it exists.
fn create(run_dir: &Path, info: &LeaseInfo) -> Result<bool> {
    let tmp = write_temp(run_dir, info)?;
    let path = run_dir.join(LEASE_FILE);
    let linked = match std::fs::hard_link(&tmp, &path) {
        Ok(()) => true,
        // NFS may report a failure for a link that was made: the link count says.
        Err(_) => {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&tmp)
                .map(|m| m.nlink() == 2)
                .unwrap_or(false)
        }
    };
    let _ = std::fs::remove_file(&tmp);
    Ok(linked)
}

/// Tries to claim the run in `run_dir` (which must exist).
pub fn try_claim(run_dir: &Path, worker: &str, timeout: Duration) -> Result<Claim> {
    let t = now();
    let info = LeaseInfo {
        token: unique_suffix(),
        host: hostname(),
        pid: std::process::id(),
        slurm_task: slurm_task(),
        worker: worker.to_string(),
        started: t,
        heartbeat: t,
    };
    let mut taken_over = None;
    for _ in 0..4 {
        if create(run_dir, &info)? {
            let mut l = Lease::start(run_dir, info, timeout);
            l.taken_over = taken_over;
            return Ok(Claim::Acquired(l));
        }
        let Some(held) = read(run_dir)? else {
            continue; // released meanwhile: try again
        };
        let Some(reason) = stale_reason(&held, timeout) else {
            return Ok(Claim::Held(held));
        };
        // Take over: move the stale lease aside; one rename wins.
        let path = run_dir.join(LEASE_FILE);
        let aside = run_dir.join(format!(".lease-stale-{}", unique_suffix()));
        if std::fs::rename(&path, &aside).is_err() {
            continue; // someone else moved it
        }
        match read_file(&aside) {
            Some(moved) if moved.token != held.token || moved.heartbeat != held.heartbeat => {
                // We moved a lease that was renewed or re-created meanwhile: put it back.
                let _ = std::fs::hard_link(&aside, &path);
                let _ = std::fs::remove_file(&aside);
                return Ok(Claim::Held(moved));
            }
            _ => {
                let _ = std::fs::remove_file(&aside);
                taken_over = Some(format!(
                    "{} (pid {} on {}): {reason}",
                    held.worker, held.pid, held.host
                ));
            }
        }
    }
    Ok(match read(run_dir)? {
        Some(h) => Claim::Held(h),
        None => anyhow::bail!("{}: cannot claim the run", run_dir.display()),
    })
}

fn read_file(p: &Path) -> Option<LeaseInfo> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

struct Shared {
    run_dir: PathBuf,
    info: Mutex<LeaseInfo>,
    lost: AtomicBool,
}

impl Shared {
    /// Rewrites the lease with a fresh heartbeat, if it is still ours.
    fn beat(&self) {
        let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner());
        match read_file(&self.run_dir.join(LEASE_FILE)) {
            Some(cur) if cur.token == info.token => {}
            _ => {
                if !self.lost.swap(true, Ordering::SeqCst) {
                    eprintln!(
                        "ddgsd-bench: warning: the lease on {} was taken over by another worker",
                        self.run_dir.display()
                    );
                }
                return;
            }
        }
        info.heartbeat = now();
        if let Ok(tmp) = write_temp(&self.run_dir, &info) {
            if std::fs::rename(&tmp, self.run_dir.join(LEASE_FILE)).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
}

/// A held lease; its heartbeat thread stops and the file is removed on drop.
pub struct Lease {
    /// The stale lease this one replaced: its holder and why it was stale.
    pub taken_over: Option<String>,
    shared: Arc<Shared>,
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lease {
    fn start(run_dir: &Path, info: LeaseInfo, timeout: Duration) -> Lease {
        let shared = Arc::new(Shared {
            run_dir: run_dir.to_path_buf(),
            info: Mutex::new(info),
            lost: AtomicBool::new(false),
        });
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let every = (timeout / 4).min(Duration::from_secs(60));
        let (s2, st2) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let (m, cv) = &*st2;
            let mut stopped = m.lock().unwrap_or_else(|e| e.into_inner());
            while !*stopped {
                let (g, _) = cv
                    .wait_timeout(stopped, every)
                    .unwrap_or_else(|e| e.into_inner());
                stopped = g;
                if !*stopped {
                    s2.beat();
                }
            }
        });
        Lease {
            taken_over: None,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// Refreshes the heartbeat now (called at every epoch end).
    pub fn heartbeat(&self) {
        self.shared.beat();
    }

    /// What this lease says.
    pub fn info(&self) -> LeaseInfo {
        self.shared
            .info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether another worker took the run over.
    pub fn lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        {
            let (m, cv) = &*self.stop;
            *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Release: remove the file only if it is still ours.
        let path = self.shared.run_dir.join(LEASE_FILE);
        let token = self.info().token;
        if read_file(&path).is_some_and(|l| l.token == token) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
