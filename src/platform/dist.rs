//! A process group of one data-parallel run, through libtorch's c10d
//! (`csrc/dist.cpp`): a TCPStore rendezvous (rank 0 hosts it), a gloo group
//! over CPU tensors for control messages (stop flags, run indices, weight
//! digests, counts), and the data group for gradients (the same gloo group,
//! or NCCL on CUDA). Every collective is bounded by the group's timeout; a
//! collective that fails (a peer died, a node was lost, the timeout passed)
//! is turned into one line naming the lost rank: the survivors hold a roll
//! call in the store (and look at the pids of peers on their own host), and
//! the group is then leaked, not destroyed (its destructor could wait for
//! the dead peer).
use anyhow::{bail, Result};
use std::ffi::{c_char, c_int, c_void};
#[cfg(ddgsd_dist)]
use std::ffi::{c_long, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tch::Tensor;

/// The data group's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Gloo,
    Nccl,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }
}

/// Which of the two groups a collective runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// gloo over CPU tensors.
    Control,
    /// The gradients' group (CPU or CUDA tensors of the training device).
    Data,
}

/// A reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Sum,
    Max,
    Min,
}

/// Where and how to join.
#[derive(Debug, Clone)]
pub struct Spec {
    pub addr: String,
    pub port: u16,
    pub rank: usize,
    pub world: usize,
    pub backend: Backend,
    /// The CUDA device of this rank (NCCL only).
    pub cuda_index: usize,
    pub timeout: Duration,
    /// `cpu` or `cuda:N` as this rank sees it (published to the others).
    pub device: String,
}

/// What a rank tells the others at the rendezvous.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Peer {
    pub rank: usize,
    pub host: String,
    pub pid: u32,
    pub device: String,
}

/// Whether this binary can make process groups; `Err` says why not.
pub fn available() -> std::result::Result<(), String> {
    #[cfg(ddgsd_dist)]
    {
        Ok(())
    }
    #[cfg(not(ddgsd_dist))]
    {
        Err(format!(
            "data-parallel runs are unavailable: {}",
            env!("DDGSD_DIST_MISSING")
        ))
    }
}

/// Whether this binary was built with NCCL.
pub fn has_nccl() -> bool {
    #[cfg(ddgsd_dist)]
    {
        // SAFETY: plain C call.
        unsafe { ffi::ddgsd_dist_has_nccl() != 0 }
    }
    #[cfg(not(ddgsd_dist))]
    {
        false
    }
}

#[cfg(ddgsd_dist)]
mod ffi {
    use super::*;
    extern "C" {
        pub fn ddgsd_dist_has_nccl() -> c_int;
        #[allow(clippy::too_many_arguments)]
        pub fn ddgsd_dist_new(
            host: *const c_char,
            port: c_int,
            rank: c_int,
            world: c_int,
            backend: c_int,
            cuda_index: c_int,
            timeout_ms: c_long,
            err: *mut c_char,
            errlen: usize,
        ) -> *mut c_void;
        pub fn ddgsd_dist_free(h: *mut c_void);
        pub fn ddgsd_dist_allreduce(
            h: *mut c_void,
            group: c_int,
            tensors: *mut *mut c_void,
            n: usize,
            op: c_int,
            err: *mut c_char,
            errlen: usize,
        ) -> c_int;
        pub fn ddgsd_dist_broadcast(
            h: *mut c_void,
            group: c_int,
            tensor: *mut c_void,
            root: c_int,
            err: *mut c_char,
            errlen: usize,
        ) -> c_int;
        pub fn ddgsd_dist_barrier(h: *mut c_void, err: *mut c_char, errlen: usize) -> c_int;
        pub fn ddgsd_dist_store_set(
            h: *mut c_void,
            key: *const c_char,
            value: *const c_char,
            len: usize,
            err: *mut c_char,
            errlen: usize,
        ) -> c_int;
        pub fn ddgsd_dist_store_check(
            h: *mut c_void,
            key: *const c_char,
            err: *mut c_char,
            errlen: usize,
        ) -> c_int;
        pub fn ddgsd_dist_store_get(
            h: *mut c_void,
            key: *const c_char,
            buf: *mut c_char,
            len: usize,
            err: *mut c_char,
            errlen: usize,
        ) -> c_long;
    }
}

/// An error buffer for the shim, read back as its first non-empty line.
struct ErrBuf([c_char; 1024]);

impl ErrBuf {
    fn new() -> Self {
        ErrBuf([0; 1024])
    }
    fn ptr(&mut self) -> *mut c_char {
        self.0.as_mut_ptr()
    }
    fn text(&self) -> String {
        // SAFETY: NUL-terminated by copy_err (zero-initialised otherwise).
        let s = unsafe { std::ffi::CStr::from_ptr(self.0.as_ptr()) }.to_string_lossy();
        first_line(&s)
    }
}

/// The first non-empty line of a C++ exception's message, without the
/// source-location prefix that libtorch and gloo put in front.
pub fn first_line(s: &str) -> String {
    let l = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no message)");
    // "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer ..."
    match l.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((loc, rest)) if loc.contains(':') && !rest.is_empty() => rest.to_string(),
        _ => l.to_string(),
    }
}

pub struct Group {
    #[cfg_attr(not(ddgsd_dist), allow(dead_code))]
    h: *mut c_void,
    spec: Spec,
    peers: Vec<Peer>,
    /// Set when a collective failed: the group is leaked on drop.
    broken: AtomicBool,
}

// SAFETY: the c10d objects behind the handle are thread-safe (each call
// enqueues work on the group's own threads); the trainer uses the group from
// one thread at a time.
unsafe impl Send for Group {}
unsafe impl Sync for Group {}

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(ddgsd_dist)]
        if !self.broken.load(Ordering::SeqCst) {
            // SAFETY: the handle came from ddgsd_dist_new and is dropped once.
            unsafe { ffi::ddgsd_dist_free(self.h) };
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether a process of this host is alive (a zombie counts as dead).
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

impl Group {
    /// Rendezvous and group creation; a rank that cannot reach the
    /// rendezvous fails with the address it tried.
    pub fn join(spec: Spec) -> Result<Group> {
        available().map_err(anyhow::Error::msg)?;
        if spec.world == 0 || spec.rank >= spec.world {
            bail!(
                "rank {} of world size {}: expected 0 <= rank < world size",
                spec.rank,
                spec.world
            );
        }
        if spec.backend == Backend::Nccl && !has_nccl() {
            bail!("backend nccl: this binary was built without NCCL's headers (run ci/setup.sh on a machine with the CUDA wheel, then rebuild), use backend = \"gloo\"");
        }
        let h = Self::connect(&spec)?;
        let mut g = Group {
            h,
            spec,
            peers: vec![],
            broken: AtomicBool::new(false),
        };
        g.exchange_peers()?;
        Ok(g)
    }

    #[cfg(ddgsd_dist)]
    fn connect(spec: &Spec) -> Result<*mut c_void> {
        let host = CString::new(spec.addr.clone())?;
        let mut err = ErrBuf::new();
        let t0 = Instant::now();
        // SAFETY: valid C strings and buffer; exceptions are caught in C++.
        let h = unsafe {
            ffi::ddgsd_dist_new(
                host.as_ptr(),
                c_int::from(spec.port),
                spec.rank as c_int,
                spec.world as c_int,
                c_int::from(spec.backend == Backend::Nccl),
                spec.cuda_index as c_int,
                spec.timeout.as_millis() as c_long,
                err.ptr(),
                1024,
            )
        };
        if h.is_null() {
            bail!(
                "rank {} of {}: cannot join the process group at the rendezvous {}:{} (tried for {:.1} s, timeout {} s): {}",
                spec.rank,
                spec.world,
                spec.addr,
                spec.port,
                t0.elapsed().as_secs_f64(),
                spec.timeout.as_secs_f64(),
                err.text()
            );
        }
        Ok(h)
    }

    #[cfg(not(ddgsd_dist))]
    fn connect(_: &Spec) -> Result<*mut c_void> {
        bail!(available().unwrap_err())
    }

    pub fn rank(&self) -> usize {
        self.spec.rank
    }
    pub fn world(&self) -> usize {
        self.spec.world
    }
    pub fn backend(&self) -> Backend {
        self.spec.backend
    }
    pub fn timeout(&self) -> Duration {
        self.spec.timeout
    }
    /// Every rank's host, pid and device, in rank order.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }
    /// `host:port` of the rendezvous.
    pub fn rendezvous(&self) -> String {
        format!("{}:{}", self.spec.addr, self.spec.port)
    }

    fn exchange_peers(&mut self) -> Result<()> {
        let me = Peer {
            rank: self.spec.rank,
            host: hostname(),
            pid: std::process::id(),
            device: self.spec.device.clone(),
        };
        self.store_set(&format!("peer/{}", me.rank), &serde_json::to_vec(&me)?)?;
        let mut peers = Vec::with_capacity(self.spec.world);
        for r in 0..self.spec.world {
            let v = self.store_get(&format!("peer/{r}"))?;
            peers.push(serde_json::from_slice(&v)?);
        }
        self.peers = peers;
        Ok(())
    }

    #[cfg(ddgsd_dist)]
    fn store_set(&self, key: &str, value: &[u8]) -> Result<()> {
        let k = CString::new(key)?;
        let mut err = ErrBuf::new();
        // SAFETY: valid pointers for the call.
        let rc = unsafe {
            ffi::ddgsd_dist_store_set(
                self.h,
                k.as_ptr(),
                value.as_ptr() as *const c_char,
                value.len(),
                err.ptr(),
                1024,
            )
        };
        if rc != 0 {
            bail!(
                "the rendezvous store at {}: {}",
                self.rendezvous(),
                err.text()
            );
        }
        Ok(())
    }

    #[cfg(ddgsd_dist)]
    fn store_check(&self, key: &str) -> Result<bool> {
        let k = CString::new(key)?;
        let mut err = ErrBuf::new();
        // SAFETY: valid pointers for the call.
        let rc = unsafe { ffi::ddgsd_dist_store_check(self.h, k.as_ptr(), err.ptr(), 1024) };
        if rc < 0 {
            bail!(
                "the rendezvous store at {}: {}",
                self.rendezvous(),
                err.text()
            );
        }
        Ok(rc == 1)
    }

    /// The value of `key`, waiting for it up to the timeout.
    #[cfg(ddgsd_dist)]
    fn store_get(&self, key: &str) -> Result<Vec<u8>> {
        let k = CString::new(key)?;
        let mut buf = vec![0u8; 4096];
        let mut err = ErrBuf::new();
        // SAFETY: valid pointers for the call.
        let n = unsafe {
            ffi::ddgsd_dist_store_get(
                self.h,
                k.as_ptr(),
                buf.as_mut_ptr() as *mut c_char,
                buf.len(),
                err.ptr(),
                1024,
            )
        };
        if n < 0 {
            bail!(
                "rank {}: the rendezvous store at {} (key {key}): {}",
                self.spec.rank,
                self.rendezvous(),
                err.text()
            );
        }
        buf.truncate((n as usize).min(4096));
        Ok(buf)
    }

    #[cfg(not(ddgsd_dist))]
    fn store_set(&self, _: &str, _: &[u8]) -> Result<()> {
        bail!(available().unwrap_err())
    }
    #[cfg(not(ddgsd_dist))]
    fn store_check(&self, _: &str) -> Result<bool> {
        bail!(available().unwrap_err())
    }
    #[cfg(not(ddgsd_dist))]
    fn store_get(&self, _: &str) -> Result<Vec<u8>> {
        bail!(available().unwrap_err())
    }

    /// All-reduces the tensors in place (launched in this order, then
    /// waited for).
    pub fn allreduce(&self, which: Which, tensors: &[&Tensor], op: Op) -> Result<()> {
        self.call("all-reduce", |err| {
            let mut ptrs: Vec<*mut c_void> =
                tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect();
            #[cfg(ddgsd_dist)]
            // SAFETY: valid tensor handles for the duration of the call.
            let rc = unsafe {
                ffi::ddgsd_dist_allreduce(
                    self.h,
                    c_int::from(which == Which::Data),
                    ptrs.as_mut_ptr(),
                    ptrs.len(),
                    match op {
                        Op::Sum => 0,
                        Op::Max => 1,
                        Op::Min => 2,
                    },
                    err,
                    1024,
                )
            };
            #[cfg(not(ddgsd_dist))]
            let rc = {
                let _ = (&mut ptrs, which, op, err);
                1
            };
            rc
        })
    }

    /// Broadcasts `t` in place from `root`.
    pub fn broadcast(&self, which: Which, t: &Tensor, root: usize) -> Result<()> {
        self.call("broadcast", |err| {
            #[cfg(ddgsd_dist)]
            // SAFETY: a valid tensor handle for the duration of the call.
            let rc = unsafe {
                ffi::ddgsd_dist_broadcast(
                    self.h,
                    c_int::from(which == Which::Data),
                    t.as_ptr() as *mut c_void,
                    root as c_int,
                    err,
                    1024,
                )
            };
            #[cfg(not(ddgsd_dist))]
            let rc = {
                let _ = (t, which, root, err);
                1
            };
            rc
        })
    }

    /// Every rank reaches this point before any leaves it.
    pub fn barrier(&self) -> Result<()> {
        self.call("barrier", |err| {
            #[cfg(ddgsd_dist)]
            // SAFETY: plain call on a valid handle.
            let rc = unsafe { ffi::ddgsd_dist_barrier(self.h, err, 1024) };
            #[cfg(not(ddgsd_dist))]
            let rc = {
                let _ = err;
                1
            };
            rc
        })
    }

    /// The element-wise reduction of `v` over the ranks (control group).
    pub fn reduce_i64(&self, v: &[i64], op: Op) -> Result<Vec<i64>> {
        let t = Tensor::from_slice(v);
        self.allreduce(Which::Control, &[&t], op)?;
        Ok(Vec::<i64>::try_from(&t)?)
    }

    /// The element-wise sum of `v` over the ranks (control group).
    pub fn sum_f64(&self, v: &[f64]) -> Result<Vec<f64>> {
        let t = Tensor::from_slice(v);
        self.allreduce(Which::Control, &[&t], Op::Sum)?;
        Ok(Vec::<f64>::try_from(&t)?)
    }

    /// Rank `root`'s `v` on every rank (control group).
    pub fn broadcast_i64(&self, v: &[i64], root: usize) -> Result<Vec<i64>> {
        let t = Tensor::from_slice(v);
        self.broadcast(Which::Control, &t, root)?;
        Ok(Vec::<i64>::try_from(&t)?)
    }

    fn call(&self, what: &str, f: impl FnOnce(*mut c_char) -> c_int) -> Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            bail!("the process group failed earlier");
        }
        let mut err = ErrBuf::new();
        if f(err.ptr()) == 0 {
            return Ok(());
        }
        bail!(self.lost(what, &err.text()))
    }

    /// After a failed collective: which ranks are gone, as one line.
    fn lost(&self, what: &str, cause: &str) -> anyhow::Error {
        self.broken.store(true, Ordering::SeqCst);
        let lost = self.roll_call();
        let names: Vec<String> = lost
            .iter()
            .map(|&r| match self.peers.get(r) {
                Some(p) => format!("rank {r} (pid {} on {}, {})", p.pid, p.host, p.device),
                None => format!("rank {r}"),
            })
            .collect();
        let who = if names.is_empty() {
            "no rank answered the roll call as lost (a peer failed on its own side)".to_string()
        } else {
            format!(
                "{} of {} {} lost",
                names.join(", "),
                self.spec.world,
                if names.len() == 1 { "was" } else { "were" }
            )
        };
        anyhow::Error::new(RankLost {
            lost,
            line: format!(
                "rank {} of {}: {who}; the {what} failed: {cause}",
                self.spec.rank, self.spec.world
            ),
        })
    }

    /// Each survivor writes `rollcall/<rank>` in the store and waits (at
    /// most the timeout, at most 10 s) for the others'; a peer on this host
    /// whose pid is gone is lost at once. A store that cannot be reached
    /// means rank 0 (which hosts it) is gone. Rank 0 then waits for the
    /// survivors to finish theirs before it lets its store go.
    fn roll_call(&self) -> Vec<usize> {
        let me = self.spec.rank;
        if self.store_set(&format!("rollcall/{me}"), b"1").is_err() {
            return vec![0];
        }
        let host = hostname();
        let deadline = Instant::now() + self.spec.timeout.min(Duration::from_secs(10));
        let mut state: Vec<Option<bool>> = (0..self.spec.world)
            .map(|r| (r == me).then_some(true))
            .collect();
        while state.iter().any(Option::is_none) && Instant::now() < deadline {
            for (r, s) in state.iter_mut().enumerate() {
                if s.is_some() {
                    continue;
                }
                match self.store_check(&format!("rollcall/{r}")) {
                    Ok(true) => *s = Some(true),
                    Ok(false) => {}
                    Err(_) => return vec![0],
                }
                if s.is_none() {
                    if let Some(p) = self.peers.get(r).filter(|p| p.host == host) {
                        if !pid_alive(p.pid) {
                            *s = Some(false);
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let lost: Vec<usize> = state
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != Some(true))
            .map(|(r, _)| r)
            .collect();
        let _ = self.store_set(&format!("rollcall-done/{me}"), b"1");
        if me == 0 {
            let until = Instant::now() + Duration::from_secs(5).min(self.spec.timeout);
            for r in (1..self.spec.world).filter(|r| !lost.contains(r)) {
                while !self
                    .store_check(&format!("rollcall-done/{r}"))
                    .unwrap_or(true)
                    && Instant::now() < until
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        lost
    }
}

/// A collective failed because ranks were lost (or timed out).
#[derive(Debug, thiserror::Error)]
#[error("{line}")]
pub struct RankLost {
    pub lost: Vec<usize>,
    pub line: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_lose_the_source_location() {
        assert_eq!(
            first_line("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:4242\nmore"),
            "Connection closed by peer [127.0.0.1]:4242"
        );
        assert_eq!(first_line("\n  plain message \n"), "plain message");
        assert_eq!(first_line("[not a location] x"), "[not a location] x");
        assert_eq!(first_line(""), "(no message)");
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn spec(port: u16, rank: usize, timeout: Duration) -> Spec {
        Spec {
            addr: "127.0.0.1".into(),
            port,
            rank,
            world: 2,
            backend: Backend::Gloo,
            cuda_index: 0,
            timeout,
            device: "cpu".into(),
        }
    }

    /// Two ranks as two threads of this process: a real TCPStore and gloo.
    #[test]
    fn two_ranks_reduce_broadcast_and_name_their_peers() {
        if available().is_err() {
            println!("SKIP: {}", available().unwrap_err());
            return;
        }
        let port = free_port();
        let t = Duration::from_secs(20);
        let ranks: Vec<_> = (0..2)
            .map(|r| {
                std::thread::spawn(move || {
                    let g = Group::join(spec(port, r, t)).unwrap();
                    let x = Tensor::from_slice(&[1.0f32 + r as f32, 10.0]);
                    g.allreduce(Which::Data, &[&x], Op::Sum).unwrap();
                    let sum = Vec::<f32>::try_from(&x).unwrap();
                    let max = g.reduce_i64(&[r as i64, -(r as i64)], Op::Max).unwrap();
                    let b = g.broadcast_i64(&[7 + r as i64], 1).unwrap();
                    g.barrier().unwrap();
                    (sum, max, b, g.peers().to_vec())
                })
            })
            .collect();
        for h in ranks {
            let (sum, max, b, peers) = h.join().unwrap();
            assert_eq!(sum, vec![3.0, 20.0]);
            assert_eq!(max, vec![1, 0]);
            assert_eq!(b, vec![8]);
            assert_eq!(peers.len(), 2);
            assert_eq!(peers[1].rank, 1);
            assert_eq!(peers[0].pid, std::process::id());
        }
    }

    #[test]
    fn an_unreachable_rendezvous_is_named() {
        if available().is_err() {
            println!("SKIP: {}", available().unwrap_err());
            return;
        }
        let port = free_port();
        let t0 = Instant::now();
        let err = Group::join(spec(port, 1, Duration::from_secs(2)))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!(
                "rank 1 of 2: cannot join the process group at the rendezvous 127.0.0.1:{port}"
            )),
            "{err}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "bounded: {:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn own_pid_is_alive_and_a_free_pid_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX - 1));
    }
}
