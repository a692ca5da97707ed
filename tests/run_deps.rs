//! Runs that depend on runs (TF-KD-self's teacher) through the binary:
//! `plan` puts every student after its teacher and refuses a cycle or a
//! missing teacher; one process, two processes on one results directory,
//! `--workers` and a `--partition` share all train every run once with the
//! straight hashes, no student before its teacher; the teacher's worker
//! killed while a student waits is taken over; a killed student resumes to
//! the straight hash; a changed teacher is refused on resume and by the
//! gate.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// Teacher, students (official and α = 0) and BYOT, 2 seeds. `train`
/// samples make the runs long enough to be killed mid-way.
fn suite(name: &str, train: usize, epochs: u32) -> String {
    tiny_suite(
        name,
        &["tf_kd_self", "baseline", "tf_a0"],
        &[0, 1],
        epochs,
        "",
    )
    .replace("train = 192", &format!("train = {train}"))
        + "\n[arm.tf_a0]\nbase = \"tf_kd_self\"\nalpha = 0.0\n"
}

/// Every student's recorded teacher is its teacher's record.
fn students_bound_to_their_teachers(p: &Project, out: &str, suite: &str) {
    students_bound_to_their_teachers_n(p, out, suite, 4)
}

/// ... and there are `n` students.
fn students_bound_to_their_teachers_n(p: &Project, out: &str, suite: &str, n: usize) {
    let recs = p.records(out, suite);
    let by_id: BTreeMap<String, &serde_json::Value> = recs
        .iter()
        .map(|r| (r["run_id"].as_str().unwrap().to_string(), r))
        .collect();
    let mut students = 0;
    for r in &recs {
        let t = &r["config"]["teacher"];
        if t.is_null() {
            continue;
        }
        students += 1;
        let teacher = by_id[t["run"].as_str().unwrap()];
        assert_eq!(
            t["checkpoint_sha256"], teacher["checkpoint_sha256"],
            "{}",
            r["run_id"]
        );
    }
    assert_eq!(students, n);
}

fn straight(p: &Project) -> BTreeMap<String, String> {
    let o = p.run(&["run", "suites/d.toml", "--no-check", "--out", "straight"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let h = hashes(p, "straight", "d");
    assert_eq!(h.len(), 6);
    for s in [0, 1] {
        assert_eq!(
            h[&format!("resnet8w4__tf_a0__s{s}")],
            h[&format!("resnet8w4__baseline__s{s}")],
            "tf_kd_self with alpha = 0 trains to its teacher's (the baseline's) hash"
        );
        assert_ne!(
            h[&format!("resnet8w4__tf_kd_self__s{s}")],
            h[&format!("resnet8w4__baseline__s{s}")]
        );
    }
    students_bound_to_their_teachers(p, "straight", "d");
    h
}

#[test]
fn plan_orders_students_after_teachers_and_refuses_bad_teachers() {
    let p = Project::new();
    p.write("suites/d.toml", &suite("d", 192, 1));
    let o = p.run(&["plan", "suites/d.toml"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let pos = |id: &str| text.find(id).unwrap_or_else(|| panic!("{id}: {text}"));
    for s in [0, 1] {
        let b = pos(&format!("resnet8w4__baseline__s{s}"));
        assert!(pos(&format!("resnet8w4__tf_kd_self__s{s} ")) > b, "{text}");
        assert!(pos(&format!("resnet8w4__tf_a0__s{s} ")) > b, "{text}");
    }
    assert!(
        text.contains("after resnet8w4__baseline__s0 (its teacher)"),
        "{text}"
    );
    // A share holds every student with its teacher.
    for m in 1..=3 {
        let o = p.run(&[
            "plan",
            "suites/d.toml",
            "--partition",
            &format!("hash:{m}/3"),
        ]);
        let t = stdout(&o);
        for s in [0, 1] {
            let has = |a: &str| t.contains(&format!("resnet8w4__{a}__s{s} "));
            assert_eq!(has("baseline"), has("tf_kd_self"), "{t}");
            assert_eq!(has("baseline"), has("tf_a0"), "{t}");
        }
    }
    let bad = |extra: &str, arms: &[&str], want: &[&str]| {
        p.write(
            "suites/bad.toml",
            &(tiny_suite("bad", arms, &[0], 1, "") + extra),
        );
        let o = p.run(&["plan", "suites/bad.toml"]);
        assert_eq!(code(&o), 2, "{extra}: {}", stderr(&o));
        let e = error_line(&o);
        for w in want {
            assert!(e.contains(w), "{extra}: {e}");
        }
    };
    bad(
        "",
        &["tf_kd_self", "ddgsd"],
        &["arm.tf_kd_self.teacher", "`baseline` is not among"],
    );
    bad(
        "\n[arm.a]\nbase = \"tf_kd_self\"\nteacher = \"b\"\n[arm.b]\nbase = \"tf_kd_self\"\nteacher = \"a\"\n",
        &["a", "b"],
        &["cycle (a <- b <- a)"],
    );
    bad(
        "\n[arm.tf_kd_self]\nteacher = \"nope\"\n",
        &["tf_kd_self", "baseline"],
        &["`nope` is not among the suite's arms"],
    );
    bad(
        "\n[arm.baseline]\nteacher = \"ddgsd\"\n",
        &["baseline", "ddgsd"],
        &["arm.baseline.teacher", "distils from no teacher"],
    );
    bad(
        "\n[arm.tf_kd_self]\nteacher = { dir = \"results/none\" }\n",
        &["tf_kd_self"],
        &["arm.tf_kd_self.teacher.dir", "finished run directory"],
    );
}

#[test]
fn every_scheduler_trains_students_after_teachers_with_the_straight_hashes() {
    let p = Project::new();
    p.write("suites/d.toml", &suite("d", 192, 2));
    let want = straight(&p);
    // Two processes on one results directory, waiting for what the other holds.
    let spawn = || {
        p.spawn(&[
            "run",
            "suites/d.toml",
            "--no-check",
            "--wait",
            "--out",
            "two",
        ])
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let log = stderr(&a) + &stderr(&b);
    assert_eq!((code(&a), code(&b)), (0, 0), "{log}");
    let t = trainings(&log);
    assert!(t.len() == 6 && t.values().all(|&n| n == 1), "{t:?}\n{log}");
    assert_eq!(hashes(&p, "two", "d"), want, "{log}");
    students_bound_to_their_teachers(&p, "two", "d");
    // --workers: the workers wait for teachers by themselves.
    let w = p.run(&[
        "run",
        "suites/d.toml",
        "--no-check",
        "--out",
        "w",
        "--workers",
        "cpu,cpu",
    ]);
    assert_eq!(code(&w), 0, "{}", stderr(&w));
    assert_eq!(hashes(&p, "w", "d"), want);
    // Shares: each trains its students after its teachers, alone.
    for m in 1..=2 {
        let o = p.run(&[
            "run",
            "suites/d.toml",
            "--no-check",
            "--out",
            "parts",
            "--partition",
            &format!("hash:{m}/2"),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    assert_eq!(hashes(&p, "parts", "d"), want);
    // A teacher from outside the suite: the straight run's baseline, as a
    // finished run directory and as a model file, teaches the same student.
    let ext = |teacher: &str| {
        tiny_suite("x", &["tf_ext"], &[0], 2, "")
            + &format!("\n[arm.tf_ext]\nbase = \"tf_kd_self\"\nteacher = {teacher}\n")
    };
    let tdir = "../straight/d/resnet8w4__baseline__s0";
    for (i, t) in [
        format!("{{ dir = \"{tdir}\" }}"),
        format!("{{ model = \"{tdir}/model.safetensors\" }}"),
    ]
    .iter()
    .enumerate()
    {
        p.write("suites/x.toml", &ext(t));
        let out = format!("x{i}");
        let o = p.run(&["run", "suites/x.toml", "--no-check", "--out", &out]);
        assert_eq!(code(&o), 0, "{t}: {}", stderr(&o));
        assert_eq!(
            hashes(&p, &out, "x")["resnet8w4__tf_ext__s0"],
            want["resnet8w4__tf_kd_self__s0"],
            "{t}"
        );
    }
    for (t, why) in [
        ("3", "expected an arm of the suite"),
        (
            "{ dir = \"a\", model = \"b\" }",
            "expected an arm of the suite",
        ),
        (
            &format!("{{ model = \"{tdir}/config.json\" }}"),
            "not a readable safetensors file",
        ),
    ] {
        p.write("suites/x.toml", &ext(t));
        let o = p.run(&["plan", "suites/x.toml"]);
        assert_eq!(code(&o), 2, "{t}");
        assert!(error_line(&o).contains(why), "{t}: {}", error_line(&o));
    }
}

#[test]
fn the_teachers_killed_worker_is_taken_over_and_a_killed_student_resumes() {
    let p = Project::new();
    p.write("suites/d.toml", &suite("d", 1536, 3));
    let want = straight(&p);
    // One seed: a teacher and its two students. Worker A holds the teacher;
    // B, with nothing else to claim, waits for it; A is killed; B takes the
    // teacher over, then trains the students.
    p.write(
        "suites/d1.toml",
        &suite("d", 1536, 3).replace("seeds = [0, 1]", "seeds = [0]"),
    );
    let dir = p.path().join("k/d");
    let mut a = p.spawn(&["run", "suites/d1.toml", "--no-check", "--out", "k"]);
    let teacher = dir.join("resnet8w4__baseline__s0");
    wait_for("A's teacher checkpoint", Duration::from_secs(60), || {
        teacher.join("checkpoint/state.json").exists()
    });
    // Without --wait, a worker with nothing but waiting students stops and
    // says why (--no-check: its part is done; judged, it would be exit 3).
    let o = p.run(&["run", "suites/d1.toml", "--no-check", "--out", "k"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("2 run(s) wait for their teachers")
            && e.contains("resnet8w4__tf_kd_self__s0 (teacher resnet8w4__baseline__s0)"),
        "{e}"
    );
    let mut b = p
        .cmd(&[
            "run",
            "suites/d1.toml",
            "--no-check",
            "--wait",
            "--out",
            "k",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(b.stderr.take().unwrap()));
    let mut log = String::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        log.push_str(&l);
        log.push('\n');
        if l.contains("waits for its teacher resnet8w4__baseline__s0, held by") {
            break;
        }
    }
    assert!(
        log.contains("resnet8w4__tf_kd_self__s0 waits for its teacher"),
        "{log}"
    );
    assert!(
        !teacher.join("record.json").exists(),
        "the student waited for an unfinished teacher"
    );
    unsafe { libc::kill(a.id() as i32, libc::SIGKILL) };
    let _ = a.wait();
    for l in lines {
        log.push_str(&l.unwrap());
        log.push('\n');
    }
    assert!(b.wait().unwrap().success(), "{log}");
    let taken = log
        .find("resnet8w4__baseline__s0: taking the run over")
        .unwrap_or_else(|| panic!("B takes the dead worker's teacher over: {log}"));
    let student = log.find("resnet8w4__tf_kd_self__s0 done").expect(&log);
    assert!(taken < student, "{log}");
    let got = hashes(&p, "k", "d");
    assert_eq!(got.len(), 3);
    for (id, h) in &got {
        assert_eq!(h, &want[id], "{id}\n{log}");
    }
    students_bound_to_their_teachers_n(&p, "k", "d", 2);

    // A student killed after its first checkpoint resumes to the straight hash.
    let mut c = p.spawn(&["run", "suites/d.toml", "--no-check", "--out", "s"]);
    let student = p.path().join("s/d/resnet8w4__tf_kd_self__s0");
    wait_for(
        "the student's first checkpoint",
        Duration::from_secs(120),
        || student.join("checkpoint/state.json").exists(),
    );
    unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
    let _ = c.wait();
    assert!(!student.join("record.json").exists());
    // The teacher changed meanwhile (trained again elsewhere): refused.
    let trec = p.path().join("s/d/resnet8w4__baseline__s0/record.json");
    let orig = std::fs::read_to_string(&trec).unwrap();
    let h = want["resnet8w4__baseline__s0"].clone();
    std::fs::write(&trec, orig.replace(&h, &"1".repeat(64))).unwrap();
    let o = p.run(&["run", "suites/d.toml", "--no-check", "--out", "s"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = error_line(&o);
    assert!(
        e.contains("teacher.checkpoint_sha256") && e.contains("teacher's checkpoint changed"),
        "{e}"
    );
    std::fs::write(&trec, &orig).unwrap();
    let o = p.run(&["run", "suites/d.toml", "--no-check", "--out", "s"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("resnet8w4__tf_kd_self__s0"), "resumed");
    assert_eq!(hashes(&p, "s", "d"), want);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(student.join("record.json")).unwrap())
            .unwrap();
    assert_eq!(r["timing"]["resumed"], true);

    // The gate: a student of another teacher merged into the directory.
    let srec = student.join("record.json");
    let text = std::fs::read_to_string(&srec).unwrap();
    std::fs::write(&srec, text.replace(&h, &"2".repeat(64))).unwrap();
    let o = p.run(&["report", "s/d"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        error_line(&o).contains("trained on another teacher"),
        "{}",
        error_line(&o)
    );
}
