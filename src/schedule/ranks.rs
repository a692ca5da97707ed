//! Data-parallel workers: the ranks of one group train the runs of a suite
//! one after the other, every rank on every run.
//! - Rank 0 is the worker as `runner` knows it: it claims runs (leases),
//!   writes checkpoints and records, checks the suite. Before each run it
//!   announces the run's index to the other ranks ([`announce`]), which
//!   [`follow`] it: they train the same run on their share of each batch
//!   and write nothing.
//! - [`launch_local`] is `run --ranks N` outside a launcher: it starts N
//!   rank processes of this binary on this machine with torchrun's
//!   variables (one GPU each through `CUDA_VISIBLE_DEVICES` when the suite
//!   trains on CUDA, shared round-robin when there are fewer GPUs than
//!   ranks), forwards Ctrl-C once, and when a rank dies makes sure the
//!   others stop within the collective timeout, naming the lost rank.
use crate::data::Dataset;
use crate::platform::dist::{self, Backend, Group};
use crate::platform::launch::RankEnv;
use crate::platform::runtime::{BackendChoice, RuntimeConfig};
use crate::platform::EnvInfo;
use crate::schedule::runner::{SuiteOutcome, STOP};
use crate::suite::ResolvedSuite;
use crate::train::{self, Outcome};
use crate::util::exit::Exit;
use anyhow::{bail, Context, Result};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tch::Device;

/// This process's place in a data-parallel group.
pub struct RankCtx {
    pub group: Group,
    pub device: Device,
    pub env: RankEnv,
}

/// The training device of a rank: the CPU, or its GPU among the visible
/// ones (`LOCAL_RANK` modulo their number: one each, or shared).
pub fn rank_device(rt: &RuntimeConfig, e: &RankEnv) -> Result<Device> {
    let dev = crate::platform::select_device(rt)?;
    Ok(match dev {
        Device::Cuda(i) if rt.device == "auto" || rt.device == "cuda" => {
            let n = tch::Cuda::device_count().max(1) as usize;
            Device::Cuda(if n == 1 { i } else { e.local_rank % n })
        }
        d => d,
    })
}

/// The data group's transport for `device`.
pub fn backend(rt: &RuntimeConfig, device: Device) -> Result<Backend> {
    Ok(match (rt.backend, device) {
        (BackendChoice::Gloo, _) => Backend::Gloo,
        (BackendChoice::Nccl, Device::Cuda(_)) | (BackendChoice::Auto, Device::Cuda(_)) => {
            Backend::Nccl
        }
        (BackendChoice::Nccl, _) => {
            bail!("runtime.backend = `nccl` needs CUDA devices; this rank trains on the CPU (use gloo or auto)")
        }
        (BackendChoice::Auto, _) => Backend::Gloo,
    })
}

/// Joins the group a launcher started this process in.
pub fn join(suite: &ResolvedSuite, e: RankEnv) -> Result<RankCtx> {
    let rt = &suite.runs[0].runtime;
    crate::platform::init(rt)?;
    let device = rank_device(rt, &e)?;
    let backend = backend(rt, device)?;
    let group = Group::join(dist::Spec {
        addr: e.addr.clone(),
        port: e.port,
        rank: e.rank,
        world: e.world,
        backend,
        cuda_index: match device {
            Device::Cuda(i) => i,
            _ => 0,
        },
        timeout: rt.collective_timeout(),
        device: match device {
            Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".into(),
        },
    })?;
    Ok(RankCtx {
        group,
        device,
        env: e,
    })
}

/// What rank 0 tells the others next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// Train the run with this index in the suite's plan.
    Run(usize),
    /// Nothing to train yet (rank 0 waits for runs held by other workers).
    Wait,
    /// Stopped by a signal.
    Stop,
    /// No run left for this group.
    Done,
}

fn code(a: Announce) -> i64 {
    match a {
        Announce::Run(i) => i as i64,
        Announce::Wait => -3,
        Announce::Stop => -2,
        Announce::Done => -1,
    }
}

/// Rank 0: tells every rank what comes next.
pub fn announce(g: &Group, a: Announce) -> Result<()> {
    g.broadcast_i64(&[code(a)], 0).map(|_| ())
}

fn decode(c: i64) -> Result<Announce> {
    Ok(match c {
        -1 => Announce::Done,
        -2 => Announce::Stop,
        -3 => Announce::Wait,
        i if i >= 0 => Announce::Run(i as usize),
        other => bail!("rank 0 announced {other}, which no version of this binary sends"),
    })
}

fn receive(g: &Group) -> Result<Announce> {
    decode(g.broadcast_i64(&[0], 0)?[0])
}

/// Ranks > 0 of a suite: set up like rank 0 (the device, the environment,
/// Ctrl-C), then [`follow`] it.
pub fn run_follower(
    suite: &ResolvedSuite,
    out: &std::path::Path,
    r: &RankCtx,
) -> Result<SuiteOutcome> {
    let rt = &suite.runs[0].runtime;
    let mut env = crate::platform::collect(r.device, rt, crate::data::imagenet::decode::DECODER);
    env.set_group(r.group.backend().name(), r.group.peers());
    // Opened now, while rank 0 opens it too (not when the first run comes,
    // which would keep rank 0 waiting at its first collective).
    let data = crate::data::open(&suite.dataset)?;
    crate::schedule::runner::install_signal_handlers();
    follow(suite, out, r, &env, Some(data))
}

/// Ranks > 0: train what rank 0 announces until it is done.
pub fn follow(
    suite: &ResolvedSuite,
    out: &std::path::Path,
    r: &RankCtx,
    env: &EnvInfo,
    data: Option<std::sync::Arc<dyn Dataset>>,
) -> Result<SuiteOutcome> {
    let dir = out.join(&suite.name);
    let mut data = data;
    loop {
        match receive(&r.group)? {
            Announce::Done => return Ok(SuiteOutcome::Trained),
            Announce::Stop => return Ok(SuiteOutcome::Interrupted),
            Announce::Wait => continue,
            Announce::Run(i) => {
                let cfg = suite.runs.get(i).with_context(|| {
                    format!(
                        "rank 0 announced run {i}, the plan has {}",
                        suite.runs.len()
                    )
                })?;
                if data.is_none() {
                    data = Some(crate::data::open(&suite.dataset)?);
                }
                let d = data.clone().expect("opened");
                let run_dir = dir.join(&cfg.run_id);
                // Rank 0 announces a student only once its teacher is finished.
                let bound = match crate::schedule::teacher::bind(&dir, cfg)? {
                    crate::schedule::teacher::Binding::Ready(b) => b,
                    crate::schedule::teacher::Binding::Waiting(t) => anyhow::bail!(
                        "rank 0 announced {}, whose teacher {t} has no record in {}",
                        cfg.run_id,
                        dir.display()
                    ),
                };
                let ctx = train::RunContext {
                    cfg: &bound.cfg,
                    teacher: bound.teacher.as_deref(),
                    data: d.as_ref(),
                    dir: &run_dir,
                    device: r.device,
                    env,
                    stop: &STOP,
                    group: Some(&r.group),
                };
                if let Outcome::Stopped { .. } = train::run(&ctx, &mut |_| {})? {
                    return Ok(SuiteOutcome::Interrupted);
                }
            }
        }
    }
}

/// A free TCP port on the loopback interface for a local rendezvous.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot find a free port for the rendezvous on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// `CUDA_VISIBLE_DEVICES` of rank `rank`: its GPU among the parent's
/// visible ones (round-robin), or none on the CPU.
pub fn rank_visible(rank: usize, gpus: usize, parent: Option<&str>) -> String {
    if gpus == 0 {
        return String::new();
    }
    crate::schedule::workers::visible_devices(
        &crate::schedule::workers::Entry::Cuda(rank % gpus),
        parent,
    )
}

/// `run --ranks N` outside a launcher: N rank processes of this binary with
/// `args` (this command line), rank 0's table on stdout, every rank's
/// stderr prefixed with its rank. Returns rank 0's exit code; a rank that
/// dies (killed, out of memory) is an error naming it, once the others
/// stopped (they do within the collective timeout; past it and a margin the
/// launcher kills them).
pub fn launch_local(rt: &RuntimeConfig, world: usize, args: &[String]) -> Result<Exit> {
    dist::available().map_err(anyhow::Error::msg)?;
    let exe = std::env::current_exe().context("cannot find this binary to start the ranks")?;
    let gpus = if rt.device == "cpu" || !tch::Cuda::is_available() {
        0
    } else {
        tch::Cuda::device_count().max(0) as usize
    };
    let parent_visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let port = free_port()?;
    crate::schedule::runner::install_signal_handlers();
    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    let mut children: Vec<Child> = Vec::new();
    for r in 0..world {
        let mut c = Command::new(&exe);
        c.args(args)
            .env("RANK", r.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_RANK", r.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env(
                "CUDA_VISIBLE_DEVICES",
                rank_visible(r, gpus, parent_visible.as_deref()),
            )
            .stdin(Stdio::null())
            .stdout(if r == 0 {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        // Own process group: Ctrl-C reaches this launcher only, which
        // forwards one SIGTERM to every rank.
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c
            .spawn()
            .with_context(|| format!("cannot start rank {r}"))?;
        crate::schedule::supervise::send_lines(&mut child, r, tx.clone());
        children.push(child);
    }
    drop(tx);
    let pids: Vec<String> = children
        .iter()
        .enumerate()
        .map(|(r, c)| format!("rank {r} pid {}", c.id()))
        .collect();
    eprintln!(
        "ddgsd-bench: {world} ranks on this machine ({}; rendezvous 127.0.0.1:{port}; {})",
        pids.join(", "),
        if gpus == 0 {
            "CPU ranks".to_string()
        } else {
            format!("{gpus} GPUs")
        }
    );
    let mut status: Vec<Option<std::process::ExitStatus>> = vec![None; world];
    let mut forwarded = false;
    let mut first_loss: Option<(usize, String, Instant)> = None;
    let grace = rt.collective_timeout() + Duration::from_secs(30);
    let mut open = true;
    // Error lines are held back: after a lost rank the launcher's line is
    // the one `ddgsd-bench: error:` line, the ranks' follow it as context.
    let mut errors: Vec<(usize, String)> = vec![];
    let mut show = |r: usize, line: &str| {
        if line.starts_with("ddgsd-bench: error:") {
            errors.push((r, line.to_string()));
        } else {
            show(r, line);
        }
    };
    loop {
        if STOP.load(Ordering::SeqCst) && !forwarded {
            forwarded = true;
            for (c, s) in children.iter().zip(&status) {
                if s.is_none() {
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
                }
            }
        }
        if open {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((r, line)) => show(r, &line),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        for (r, c) in children.iter_mut().enumerate() {
            if status[r].is_none() {
                if let Some(s) = c.try_wait()? {
                    status[r] = Some(s);
                    if first_loss.is_none() {
                        if let Some(why) = lost(&s) {
                            first_loss = Some((r, why, Instant::now()));
                        }
                    }
                }
            }
        }
        if status.iter().all(Option::is_some) {
            while let Ok((r, line)) = rx.recv_timeout(Duration::from_millis(200)) {
                show(r, &line);
            }
            break;
        }
        if let Some((_, _, t)) = &first_loss {
            if t.elapsed() > grace {
                for (c, s) in children.iter_mut().zip(&status) {
                    if s.is_none() {
                        let _ = c.kill();
                    }
                }
            }
        }
    }
    let code = |s: &Option<std::process::ExitStatus>| s.and_then(|s| s.code());
    for (r, line) in &errors {
        match (r, &first_loss) {
            (0, None) => eprintln!("{line}"),
            _ => eprintln!("[rank {r}] {}", &line["ddgsd-bench: ".len()..]),
        }
    }
    if let Some((r, why, _)) = first_loss {
        bail!(
            "rank {r} of {world} (pid {}) {why}; the other ranks stopped (exit codes {}); the run resumes from its last complete checkpoint: run the same command again",
            children[r].id(),
            status
                .iter()
                .map(|s| code(s).map_or("signal".into(), |c| c.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let codes: Vec<i32> = status.iter().map(|s| code(s).unwrap_or(2)).collect();
    let rank0 = codes[0];
    if let Some((r, c)) = codes
        .iter()
        .enumerate()
        .find(|(_, &c)| c != 0 && c != 130 && c != rank0)
    {
        bail!("rank {r} of {world} exited with {c} (its error is above)");
    }
    Ok(Exit::from_code(rank0).unwrap_or(Exit::Input))
}

/// Why a rank's exit means it was lost: killed by a signal (other than
/// the SIGTERM this launcher forwards) or an abort.
fn lost(s: &std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    match s.signal() {
        Some(libc::SIGTERM) | Some(libc::SIGINT) | None => None,
        Some(sig) => Some(format!(
            "was killed by {}",
            crate::schedule::supervise::signal_name(sig)
        )),
    }
}

fn show(r: usize, line: &str) {
    // libtorch's C++ stack frames say nothing to a user.
    let t = line.trim_start();
    if t.starts_with("frame #") || t.starts_with("Exception raised from") || t.is_empty() {
        return;
    }
    if r == 0 {
        eprintln!("{line}");
    } else {
        eprintln!("[rank {r}] {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_see_their_gpu_round_robin() {
        assert_eq!(rank_visible(1, 0, Some("0,1")), "");
        assert_eq!(rank_visible(1, 2, None), "1");
        assert_eq!(rank_visible(3, 2, Some("4,6")), "6");
        assert_eq!(
            rank_visible(1, 1, Some("3")),
            "3",
            "two ranks share one GPU"
        );
    }

    #[test]
    fn announcements_round_trip() {
        for a in [
            Announce::Run(0),
            Announce::Run(7),
            Announce::Wait,
            Announce::Stop,
            Announce::Done,
        ] {
            assert_eq!(decode(code(a)).unwrap(), a);
        }
        assert!(decode(-9).is_err());
    }
}
