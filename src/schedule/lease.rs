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
//!
//! **Liveness on one host.** A lease records its holder's host, pid, start
//! time (`/proc/PID/stat`), boot id and pid namespace. A holder of this host,
//! boot and pid namespace is dead when its pid is gone, is a zombie (killed,
//! not yet reaped: `kill(pid, 0)` still succeeds on it) or belongs to a
//! process with another start time (the pid was reused, e.g. by the caller
//! itself: a restarted worker meets the lease of its earlier self). A lease
//! of an earlier boot of this host is dead. The pids of another pid
//! namespace (another container on this host) are not ours to look up: such
//! leases, and those of other hosts, go stale by their heartbeat alone.
//! Leases written before these fields were recorded are judged as before
//! (the pid exists and is not a zombie).
use crate::util::proc;
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
    /// The holder's start time: field 22 of `/proc/PID/stat` (clock ticks
    /// since boot); absent in leases of earlier versions or without /proc.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id` of the holder's host.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The holder's pid namespace (`readlink /proc/self/ns/pid`).
    #[serde(default)]
    pub pid_ns: Option<String>,
    /// `SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID` (or `SLURM_JOB_ID`) when
    /// the holder runs under Slurm.
    pub slurm_task: Option<String>,
    /// Free text naming the worker (e.g. its device; may be empty).
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
        Some((s, what)) => {
            anyhow::bail!("{what} {s}: expected a finite number of seconds, at least 1")
        }
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub use crate::util::proc::hostname;

/// This process's Slurm task, if it runs under Slurm.
pub fn slurm_task() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(j), Some(t)) => Some(format!("{j}_{t}")),
        _ => var("SLURM_JOB_ID"),
    }
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
                start_time: None,
                boot_id: None,
                pid_ns: None,
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

impl LeaseInfo {
    /// The holder in messages: `w1 cpu (pid 7189 on vm)`, or `pid 7189 on
    /// vm` for a worker without a name.
    pub fn holder(&self) -> String {
        let me = proc::Identity::current();
        let ns = if self.host == me.host && self.pid_ns.is_some() && self.pid_ns != me.pid_ns {
            " in another pid namespace"
        } else {
            ""
        };
        let at = format!("pid {}{ns} on {}", self.pid, self.host);
        // Leases of earlier versions name an unnamed worker `pid N`.
        if self.worker.is_empty() || self.worker == format!("pid {}", self.pid) {
            at
        } else {
            format!("{} ({at})", self.worker)
        }
    }

    /// A lease for this process, now.
    fn mine(worker: &str) -> LeaseInfo {
        let me = proc::Identity::current();
        let t = now();
        LeaseInfo {
            token: unique_suffix(),
            host: me.host,
            pid: me.pid,
            start_time: me.start_time,
            boot_id: me.boot_id,
            pid_ns: me.pid_ns,
            slurm_task: slurm_task(),
            worker: worker.to_string(),
            started: t,
            heartbeat: t,
        }
    }
}

/// Why a lease is stale, or `None` when it is live (see the module comment).
pub fn stale_reason(l: &LeaseInfo, timeout: Duration) -> Option<String> {
    let age = now() - l.heartbeat;
    if age > timeout.as_secs_f64() {
        return Some(format!(
            "last heartbeat {age:.0}s ago (timeout {:.0}s)",
            timeout.as_secs_f64()
        ));
    }
    let me = proc::Identity::current();
    if l.slurm_task.is_some() && l.slurm_task == slurm_task() && l.pid != me.pid {
        return Some(format!(
            "held by an earlier run of this Slurm task {}",
            l.slurm_task.as_deref().unwrap_or("")
        ));
    }
    if l.host != me.host {
        return None;
    }
    if let (Some(then), Some(now)) = (&l.boot_id, &me.boot_id) {
        if then != now {
            return Some(format!("{} has rebooted since (boot id {then})", l.host));
        }
    }
    // `pid N ...` of this host: `pid N on HOST ...`.
    let on = |why: String| {
        let pid = format!("pid {}", l.pid);
        Some(why.replacen(&pid, &format!("{pid} on {}", l.host), 1))
    };
    match &l.pid_ns {
        // Another pid namespace: its pids are not ours; the heartbeat decides.
        Some(ns) if Some(ns) != me.pid_ns.as_ref() => None,
        Some(_) if l.pid == me.pid => match (l.start_time, me.start_time) {
            (Some(then), Some(now)) if then != now => on(format!(
                "pid {} was an earlier process (started at tick {then}; this process, pid {} too, at tick {now})",
                l.pid, me.pid
            )),
            _ => None, // this very process
        },
        Some(_) => proc::alive(l.pid, l.start_time).err().and_then(on),
        // A lease of an earlier version: no start time, no namespace.
        None if l.pid == me.pid => None,
        None => proc::alive(l.pid, None).err().and_then(on),
    }
}

/// Removes the lease files that claimants on this host left when they were
/// killed between writing and renaming (`.lease-<host>-<pid>-...`); files of
/// live processes and of other hosts stay. Returns their names.
pub fn remove_leftovers(run_dir: &Path) -> Vec<String> {
    let host = hostname();
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return vec![];
    };
    let mut removed = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(".lease-stale-").or_else(|| {
            name.strip_prefix(".lease-")
                .and_then(|r| r.strip_suffix(".tmp"))
        }) else {
            continue;
        };
        // <host>-<pid>-<nanos>-<n>; the host may hold `-`.
        let mut parts = rest.rsplitn(4, '-');
        let (_n, _nanos, pid, h) = (parts.next(), parts.next(), parts.next(), parts.next());
        let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if h == Some(host.as_str())
            && proc::alive(pid, None).is_err()
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed.push(name);
        }
    }
    removed
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
    let info = LeaseInfo::mine(worker);
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
        match remove_judged(run_dir, &held) {
            Removed::Gone => continue, // someone else moved it
            Removed::Renewed(moved) => return Ok(Claim::Held(moved)),
            Removed::Yes => taken_over = Some(format!("{}: {reason}", held.holder())),
        }
    }
    Ok(match read(run_dir)? {
        Some(h) => Claim::Held(h),
        None => anyhow::bail!("{}: cannot claim the run", run_dir.display()),
    })
}

enum Removed {
    Yes,
    /// Someone else moved it first.
    Gone,
    /// It was renewed or re-created meanwhile (and was put back).
    Renewed(LeaseInfo),
}

/// Removes the lease `held`, judged stale, race-free: moved aside under a
/// unique name (one rename wins), then checked to be the lease judged.
fn remove_judged(run_dir: &Path, held: &LeaseInfo) -> Removed {
    let path = run_dir.join(LEASE_FILE);
    let aside = run_dir.join(format!(".lease-stale-{}", unique_suffix()));
    if std::fs::rename(&path, &aside).is_err() {
        return Removed::Gone;
    }
    match read_file(&aside) {
        Some(moved) if moved.token != held.token || moved.heartbeat != held.heartbeat => {
            let _ = std::fs::hard_link(&aside, &path);
            let _ = std::fs::remove_file(&aside);
            Removed::Renewed(moved)
        }
        _ => {
            let _ = std::fs::remove_file(&aside);
            Removed::Yes
        }
    }
}

/// Removes the stale lease a killed worker left on a finished run (it died
/// after writing the record, before releasing); returns why it was stale.
pub fn clear_stale(run_dir: &Path, timeout: Duration) -> Result<Option<String>> {
    let Some(held) = read(run_dir)? else {
        return Ok(None);
    };
    let Some(reason) = stale_reason(&held, timeout) else {
        return Ok(None);
    };
    Ok(matches!(remove_judged(run_dir, &held), Removed::Yes)
        .then(|| format!("{}: {reason}", held.holder())))
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
