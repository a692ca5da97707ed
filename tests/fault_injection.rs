//! SIGKILL at every rename and unlink a run makes, by strace's syscall
//! fault injection (`strace -f -e inject=SYSCALL:signal=KILL:when=N`: the
//! process dies on entering its N-th call, before the call happens), then a
//! resume: the straight run's hash every time, and no temporary file, lease
//! or stale checkpoint file left behind. Without strace, or where ptrace is
//! not allowed: "SKIP: ..." and pass. ci/test.sh installs strace.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

const CALLS: &str = "rename,renameat,renameat2,unlink,unlinkat";
const RUN: &str = "resnet8w4__baseline__s0";

/// Every file under `dir`, relative.
fn files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.path().is_dir() {
            files(&e.path(), &format!("{name}/"), out);
        } else {
            out.push(name);
        }
    }
}

/// How many times the busiest thread made each call of [`CALLS`], from an
/// `strace -f` log (`PID name(args) = ...`; split `<unfinished ...>` lines
/// count once, their `<... resumed>` halves not at all).
fn counts(log: &str) -> BTreeMap<String, usize> {
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for l in log.lines() {
        let Some((pid, rest)) = l.split_once(' ') else {
            continue;
        };
        let Some((name, _)) = rest.trim_start().split_once('(') else {
            continue;
        };
        if CALLS.split(',').any(|c| c == name) {
            *per.entry((name.to_string(), pid.to_string())).or_default() += 1;
        }
    }
    let mut most: BTreeMap<String, usize> = BTreeMap::new();
    for ((name, _), n) in per {
        let m = most.entry(name).or_default();
        *m = (*m).max(n);
    }
    most
}

#[test]
fn sigkill_at_every_rename_and_unlink_then_resume_gives_the_straight_hash() {
    let p = Project::new();
    // Two epochs with a checkpoint after each: claims, config, heartbeats,
    // checkpoint files, state.json, the removal of the older checkpoint,
    // the model, the record and the release.
    p.write(
        "suites/f.toml",
        &tiny_suite("f", &["baseline"], &[0], 2, "checkpoint_every = 1")
            .replace("train = 192", "train = 32")
            .replace("test = 64", "test = 16")
            .replace("batch_size = 32", "batch_size = 16"),
    );
    let log = p.path().join("strace.log");
    let traced = Command::new("strace")
        .current_dir(p.path())
        .args(["-f", "-qq", "-o", log.to_str().unwrap(), "-e"])
        .arg(format!("trace={CALLS}"))
        .arg(bin())
        .args(["run", "suites/f.toml", "--no-check", "--out", "straight"])
        .output();
    let traced = match traced {
        Err(e) => {
            println!("SKIP: strace cannot run here ({e}); ci/test.sh installs it");
            return;
        }
        Ok(o) if !o.status.success() => {
            println!(
                "SKIP: strace cannot trace here: {}",
                stderr(&o).lines().last().unwrap_or("")
            );
            return;
        }
        Ok(o) => o,
    };
    assert!(
        stderr(&traced).contains(" done: top1"),
        "{}",
        stderr(&traced)
    );
    let want = p.records("straight", "f").remove(0);
    let calls = counts(&std::fs::read_to_string(&log).unwrap());
    assert!(
        calls.values().sum::<usize>() >= 10,
        "too few calls traced: {calls:?}"
    );
    let (mut kills, mut cleaned) = (0, 0);
    for (call, &n) in &calls {
        for k in 1..=n {
            let out = format!("k-{call}-{k}");
            let o = Command::new("strace")
                .current_dir(p.path())
                // (the injected call must be traced too, or nothing is injected)
                .args(["-f", "-qq", "-o", "/dev/null", "-e"])
                .arg(format!("trace={call}"))
                .arg("-e")
                .arg(format!("inject={call}:signal=KILL:when={k}"))
                .arg(bin())
                .args(["run", "suites/f.toml", "--no-check", "--out", &out])
                .output()
                .unwrap();
            assert_eq!(
                o.status.signal(),
                Some(libc::SIGKILL),
                "{call} #{k} was not reached: {}",
                stderr(&o)
            );
            kills += 1;
            let r = p.run(&["run", "suites/f.toml", "--no-check", "--out", &out]);
            assert_eq!(code(&r), 0, "{call} #{k}: {}", stderr(&r));
            cleaned += usize::from(stderr(&r).contains("temporary file(s) a killed worker left"));
            let got = p.records(&out, "f").remove(0);
            assert_eq!(
                got["checkpoint_sha256"], want["checkpoint_sha256"],
                "{call} #{k}"
            );
            assert_eq!(got["metrics"], want["metrics"], "{call} #{k}");
            let mut left = Vec::new();
            files(&p.path().join(&out), "", &mut left);
            let stray: Vec<&String> = left
                .iter()
                .filter(|f| {
                    let name = f.rsplit('/').next().unwrap();
                    name.starts_with(".tmp-") || name.starts_with(".lease") || name == "lease.json"
                })
                .collect();
            assert!(stray.is_empty(), "{call} #{k}: left {stray:?}");
            let ck: Vec<&String> = left
                .iter()
                .filter(|f| f.starts_with(&format!("f/{RUN}/checkpoint/")))
                .collect();
            assert_eq!(ck.len(), 3, "{call} #{k}: state.json and one pair: {ck:?}");
        }
    }
    assert!(
        cleaned > 0,
        "no kill left a temporary file to clean: the test tests nothing"
    );
    println!(
        "fault injection: {kills} kills ({}), every resume gave the straight hash and left nothing behind ({cleaned} removed what a kill left)",
        calls
            .iter()
            .map(|(c, n)| format!("{c} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
