//! Unit tests of the lease protocol (in-process; the cross-process
//! behaviour is in tests/scale_out.rs).
use super::*;

fn lease_with(dir: &Path, f: impl FnOnce(&mut LeaseInfo)) {
    let t = now();
    let mut l = LeaseInfo {
        token: "other".into(),
        host: "some-other-host".into(),
        pid: 1,
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
