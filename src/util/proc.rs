//! Who a process is, on Linux: its host, pid, start time (field 22 of
//! `/proc/PID/stat`, clock ticks since boot), the boot it runs in
//! (`/proc/sys/kernel/random/boot_id`) and its pid namespace (`readlink
//! /proc/self/ns/pid`). Together they tell a live process from a dead one
//! whose pid was reused, from a zombie, and from a process of an earlier
//! boot; pids of another namespace are not ours to look up.
use std::path::Path;

/// This process's identity (the fields are `None` where /proc lacks them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub host: String,
    pub pid: u32,
    pub start_time: Option<u64>,
    pub boot_id: Option<String>,
    pub pid_ns: Option<String>,
}

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z` (zombie: exited, not reaped), ...
    pub state: char,
    /// Clock ticks since boot at which it started.
    pub start_time: u64,
}

/// Parses the text of `/proc/PID/stat` (the command name may hold spaces
/// and parentheses: the fields after it start at the last `)`).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), so field k is f[k - 3].
    Some(Stat {
        state: f.first()?.chars().next()?,
        start_time: f.get(22 - 3)?.parse().ok()?,
    })
}

/// `/proc/PID/stat` of a process of this pid namespace; `None` when there
/// is no such process (or no /proc).
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether /proc can be read here (Linux); without it only `kill(pid, 0)` is left.
pub fn has_proc() -> bool {
    Path::new("/proc/self/stat").exists()
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

pub fn boot_id() -> Option<String> {
    let s = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

pub fn pid_ns() -> Option<String> {
    let l = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(l.to_string_lossy().into_owned())
}

impl Identity {
    pub fn current() -> Identity {
        let pid = std::process::id();
        Identity {
            host: hostname(),
            pid,
            start_time: stat(pid).map(|s| s.start_time),
            boot_id: boot_id(),
            pid_ns: pid_ns(),
        }
    }
}

/// Whether a process of this host and pid namespace is alive, judged by
/// /proc: `Err(why)` when it is gone, a zombie, or another process than the
/// one that started at `start_time` (its pid reused). Without /proc, only
/// whether the pid exists (`kill(pid, 0)`).
pub fn alive(pid: u32, start_time: Option<u64>) -> Result<(), String> {
    if !has_proc() {
        // SAFETY: signal 0 only checks for existence and permission.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        let gone = rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        return if gone {
            Err(format!("pid {pid} is gone"))
        } else {
            Ok(())
        };
    }
    match stat(pid) {
        None => Err(format!("pid {pid} is gone")),
        Some(s) if s.state == 'Z' => Err(format!(
            "pid {pid} has exited (a zombie its parent has not reaped)"
        )),
        Some(s) if start_time.is_some_and(|t| t != s.start_time) => Err(format!(
            "pid {pid} is another process now (it started at tick {}, the holder at tick {})",
            s.start_time,
            start_time.unwrap_or(0)
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names() {
        let line = "4242 (a (b) c) Z 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'Z',
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("12 (x) S 1"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = Identity::current();
        let t = me.start_time.expect("Linux /proc");
        assert!(me.boot_id.is_some() && me.pid_ns.is_some());
        assert_eq!(alive(me.pid, Some(t)), Ok(()));
        assert_eq!(alive(me.pid, None), Ok(()));
        let e = alive(me.pid, Some(t + 1)).unwrap_err();
        assert!(e.contains("another process"), "{e}");
        // The largest pid Linux hands out is 4194304.
        assert!(alive(4_194_305, None).unwrap_err().contains("gone"));
    }
}
