//! Unit tests of the lease protocol (in-process; the cross-process
//! behaviour is in tests/scale_out.rs).
use super::*;

fn lease_with(dir: &Path, f: impl FnOnce(&mut LeaseInfo)) {
    let t = now();
    let mut l = LeaseInfo {
        token: "other".into(),
        host: "some-other-host".into(),
        pid: 1,
        start_time: None,
        boot_id: None,
        pid_ns: None,
        slurm_task: None,
        worker: "test".into(),
        started: t,
        heartbeat: t,
    };
    f(&mut l);
    std::fs::write(dir.join(LEASE_FILE), serde_json::to_string(&l).unwrap()).unwrap();
}

const T: Duration = Duration::from_secs(30);

#[test]
fn one_claim_wins_and_release_frees() {
    let d = tempfile::tempdir().unwrap();
    let Claim::Acquired(a) = try_claim(d.path(), "a", T).unwrap() else {
        panic!("first claim must win")
    };
    assert!(matches!(try_claim(d.path(), "b", T).unwrap(), Claim::Held(h) if h.worker == "a"));
    let on_disk = read(d.path()).unwrap().unwrap();
    assert_eq!(on_disk, a.info());
    assert_eq!(on_disk.pid, std::process::id());
    drop(a);
    assert!(read(d.path()).unwrap().is_none(), "released on drop");
    assert!(matches!(
        try_claim(d.path(), "b", T).unwrap(),
        Claim::Acquired(_)
    ));
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".lease")), "{names:?}");
}

#[test]
fn concurrent_claims_one_winner() {
    for _ in 0..20 {
        let d = tempfile::tempdir().unwrap();
        let wins: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let p = d.path();
                    s.spawn(move || match try_claim(p, &format!("w{i}"), T).unwrap() {
                        Claim::Acquired(l) => {
                            std::mem::forget(l); // keep the file for the others to see
                            true
                        }
                        Claim::Held(_) => false,
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(wins.iter().filter(|&&w| w).count(), 1, "{wins:?}");
    }
}

#[test]
fn live_foreign_lease_is_respected() {
    let d = tempfile::tempdir().unwrap();
    lease_with(d.path(), |_| {});
    assert!(matches!(try_claim(d.path(), "me", T).unwrap(), Claim::Held(h) if h.token == "other"));
}

#[test]
fn old_heartbeat_is_taken_over() {
    let d = tempfile::tempdir().unwrap();
    lease_with(d.path(), |l| l.heartbeat -= 31.0);
    let held = read(d.path()).unwrap().unwrap();
    assert!(stale_reason(&held, T).unwrap().contains("heartbeat"));
    let Claim::Acquired(l) = try_claim(d.path(), "me", T).unwrap() else {
        panic!("a stale lease must be taken over")
    };
    assert!(l.taken_over.as_deref().unwrap().contains("last heartbeat"));
    assert_eq!(read(d.path()).unwrap().unwrap().token, l.info().token);
}

#[test]
fn dead_pid_on_this_host_is_taken_over() {
    let d = tempfile::tempdir().unwrap();
    // A child that has exited (and been reaped) has a dead pid.
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    lease_with(d.path(), |l| {
        l.host = hostname();
        l.pid = pid;
    });
    let held = read(d.path()).unwrap().unwrap();
    assert!(stale_reason(&held, T).unwrap().contains("gone"));
    assert!(matches!(
        try_claim(d.path(), "me", T).unwrap(),
        Claim::Acquired(_)
    ));
    // A live pid on this host is not stale.
    lease_with(d.path(), |l| {
        l.host = hostname();
        l.pid = 1;
    });
    assert!(stale_reason(&read(d.path()).unwrap().unwrap(), T).is_none());
}

/// A lease of this host, boot and pid namespace for `pid` started at `start`.
fn local_lease(dir: &Path, pid: u32, start: Option<u64>) -> LeaseInfo {
    let me = proc::Identity::current();
    lease_with(dir, |l| {
        l.host = me.host.clone();
        l.pid = pid;
        l.start_time = start;
        l.boot_id = me.boot_id.clone();
        l.pid_ns = me.pid_ns.clone();
    });
    read(dir).unwrap().unwrap()
}

#[test]
fn a_zombie_holder_is_dead() {
    let d = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = c.id();
    let start = proc::stat(pid).unwrap().start_time;
    assert!(stale_reason(&local_lease(d.path(), pid, Some(start)), T).is_none());
    // SIGKILL, not reaped: a zombie, which kill(pid, 0) still finds.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let t0 = std::time::Instant::now();
    while proc::stat(pid).map(|s| s.state) != Some('Z') {
        assert!(t0.elapsed() < Duration::from_secs(10), "no zombie");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(unsafe { libc::kill(pid as i32, 0) }, 0, "a zombie exists");
    let why = stale_reason(&local_lease(d.path(), pid, Some(start)), T).unwrap();
    assert!(why.contains("zombie"), "{why}");
    // An old lease (no start time) of a zombie is dead too.
    lease_with(d.path(), |l| {
        l.host = hostname();
        l.pid = pid;
    });
    let why = stale_reason(&read(d.path()).unwrap().unwrap(), T).unwrap();
    assert!(why.contains("zombie"), "{why}");
    c.wait().unwrap();
}

#[test]
fn a_reused_pid_or_an_earlier_self_is_dead_and_other_namespaces_wait_for_the_heartbeat() {
    let d = tempfile::tempdir().unwrap();
    let me = proc::Identity::current();
    let start = me.start_time.unwrap();
    // A live process whose start time is not the holder's: its pid was reused.
    let mut c = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let t = proc::stat(c.id()).unwrap().start_time;
    let why = stale_reason(&local_lease(d.path(), c.id(), Some(t + 5)), T).unwrap();
    assert!(why.contains("another process now"), "{why}");
    c.kill().unwrap();
    c.wait().unwrap();
    // This very process's pid, started earlier: an earlier self.
    let why = stale_reason(&local_lease(d.path(), me.pid, Some(start - 1)), T).unwrap();
    assert!(why.contains("earlier process"), "{why}");
    assert!(stale_reason(&local_lease(d.path(), me.pid, Some(start)), T).is_none());
    // Another boot of this host.
    let mut l = local_lease(d.path(), 1, None);
    l.boot_id = Some("another-boot".into());
    assert!(stale_reason(&l, T).unwrap().contains("rebooted"));
    // Another pid namespace: even a pid that is dead here is not judged by it.
    let mut l = local_lease(d.path(), 4_194_305, Some(1));
    l.pid_ns = Some("pid:[1]".into());
    assert!(stale_reason(&l, T).is_none());
    assert!(
        l.holder().contains("in another pid namespace on"),
        "{}",
        l.holder()
    );
    l.heartbeat -= 31.0;
    assert!(stale_reason(&l, T).unwrap().contains("heartbeat"));
}

#[test]
fn holders_are_named_once() {
    let mut l = LeaseInfo::mine("");
    assert_eq!(l.holder(), format!("pid {} on {}", l.pid, l.host));
    l.worker = format!("pid {}", l.pid); // how earlier versions named an unnamed worker
    assert_eq!(l.holder(), format!("pid {} on {}", l.pid, l.host));
    l.worker = "w1 cpu".into();
    assert_eq!(l.holder(), format!("w1 cpu (pid {} on {})", l.pid, l.host));
}

#[test]
fn leftover_lease_files_of_dead_claimants_are_removed() {
    let d = tempfile::tempdir().unwrap();
    let h = hostname();
    let me = std::process::id();
    let dead = format!(".lease-{h}-4194305-17-0.tmp");
    let aside = format!(".lease-stale-{h}-4194305-18-1");
    let live = format!(".lease-{h}-{me}-19-2.tmp");
    let other = ".lease-elsewhere-4194305-20-3.tmp".to_string();
    for n in [&dead, &aside, &live, &other] {
        std::fs::write(d.path().join(n), b"{}").unwrap();
    }
    let mut gone = remove_leftovers(d.path());
    gone.sort();
    let mut want = vec![dead, aside];
    want.sort();
    assert_eq!(gone, want);
    assert!(d.path().join(&live).exists() && d.path().join(&other).exists());
}

#[test]
fn concurrent_takeovers_one_winner() {
    for _ in 0..20 {
        let d = tempfile::tempdir().unwrap();
        lease_with(d.path(), |l| l.heartbeat -= 100.0);
        let wins: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let p = d.path();
                    s.spawn(move || match try_claim(p, &format!("w{i}"), T).unwrap() {
                        Claim::Acquired(l) => {
                            std::mem::forget(l);
                            true
                        }
                        Claim::Held(_) => false,
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(wins.iter().filter(|&&w| w).count(), 1, "{wins:?}");
    }
}

#[test]
fn heartbeat_refreshes_and_detects_loss() {
    let d = tempfile::tempdir().unwrap();
    let Claim::Acquired(l) = try_claim(d.path(), "me", Duration::from_secs(1)).unwrap() else {
        panic!()
    };
    let first = read(d.path()).unwrap().unwrap().heartbeat;
    std::thread::sleep(Duration::from_millis(600));
    let later = read(d.path()).unwrap().unwrap().heartbeat;
    assert!(later > first, "the thread beats every timeout/4");
    l.heartbeat();
    assert!(!l.lost());
    // Someone else's lease replaces ours: the next beat notices and does not overwrite it.
    lease_with(d.path(), |_| {});
    l.heartbeat();
    assert!(l.lost());
    assert_eq!(read(d.path()).unwrap().unwrap().token, "other");
    drop(l);
    assert_eq!(
        read(d.path()).unwrap().unwrap().token,
        "other",
        "not ours to remove"
    );
}

#[test]
fn timeout_from_flag_and_env() {
    assert_eq!(timeout(Some(5.0)).unwrap(), Duration::from_secs(5));
    assert!(timeout(Some(0.5)).is_err());
    assert!(timeout(Some(f64::NAN)).is_err());
}

#[test]
fn timestamps_survive_the_json_round_trip_exactly() {
    // The lease written is compared field for field with the one read back;
    // serde_json parses floats exactly only with its `float_roundtrip`
    // feature (without it, 1796096212.2133133 came back one ulp off in CI).
    let mut t = 1_796_096_212.213_313_3_f64;
    for _ in 0..10_000 {
        let back: f64 = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.to_bits(), t.to_bits(), "{t} came back as {back}");
        t += 0.000_123_457_1;
    }
}
