//! Helpers shared by the integration tests: a tiny suite, running the real
//! binary, reading records back.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The logged values of one epoch of a record's `history` (besides `lr`).
pub const HISTORY_VALUES: [&str; 7] = [
    "loss",
    "ce",
    "kl",
    "mmd",
    "train_top1",
    "test_top1",
    "test_top5",
];

/// The arms of suites/selfkd-smoke.toml: the baseline, DDGSD and every
/// self-distillation method.
pub const SELFKD_ARMS: [&str; 8] = [
    "baseline",
    "ddgsd",
    "cs_kd",
    "ps_kd",
    "tf_kd_reg",
    "label_smoothing",
    "tf_kd_self",
    "byot",
];

/// The binary under test: `DDGSD_BIN` when set (a test binary carried to
/// another machine, as ci/gpu-check.sh runs tests/cuda.rs there), else the
/// one cargo built.
pub fn bin() -> PathBuf {
    std::env::var_os("DDGSD_BIN")
        .map(|b| std::path::absolute(PathBuf::from(b)).expect("DDGSD_BIN as an absolute path"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ddgsd-bench")))
}

/// A suite small enough to train in about a second per run.
pub fn tiny_suite(name: &str, arms: &[&str], seeds: &[u64], epochs: u32, extra: &str) -> String {
    let arms: Vec<String> = arms.iter().map(|a| format!("\"{a}\"")).collect();
    let seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
    format!(
        r#"name = "{name}"
seeds = [{}]
architectures = [{{ name = "resnet8", width = 4 }}]
arms = [{}]

[dataset]
name = "synthetic"
classes = 4
train = 192
test = 64

[train]
epochs = {epochs}
batch_size = 32
lr = 0.05
milestones = []

[runtime]
device = "cpu"
threads = 2
{extra}
"#,
        seeds.join(", "),
        arms.join(", ")
    )
}

/// A temporary project: suites/<name>.toml, expected/, results/.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("suites")).unwrap();
        std::fs::create_dir_all(dir.path().join("expected")).unwrap();
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.path()).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn records(&self, out: &str, suite: &str) -> Vec<serde_json::Value> {
        let dir = self.path().join(out).join(suite);
        let mut v = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rec = e.path().join("record.json");
            if rec.exists() {
                v.push(serde_json::from_str(&std::fs::read_to_string(rec).unwrap()).unwrap());
            }
        }
        v
    }
}

/// run id -> checkpoint_sha256 of a results directory.
pub fn hashes(p: &Project, out: &str, suite: &str) -> BTreeMap<String, String> {
    p.records(out, suite)
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_string(),
                r["checkpoint_sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits until `f` holds, failing the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies a folder tree (a run directory merged by copying).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

impl Project {
    /// The binary started in the project with its output captured.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Waits until `path` exists; false after `limit`.
pub fn wait_for_file(path: &Path, limit: std::time::Duration) -> bool {
    let t = std::time::Instant::now();
    while t.elapsed() < limit {
        if path.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    false
}

/// Runs a shipped suite (`suites/<name>.toml` of the repository, with its
/// own expected file) into `out`: (exit code, stdout, stderr).
pub fn run_shipped_suite(name: &str, out: &Path) -> (i32, String, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(bin())
        .current_dir(&root)
        .args(["run", &format!("suites/{name}.toml"), "--out"])
        .arg(out)
        .output()
        .unwrap();
    (code(&o), stdout(&o), stderr(&o))
}

/// The `ddgsd-bench: error: ...` line of a failed command.
pub fn error_line(o: &Output) -> String {
    let e = stderr(o);
    let lines: Vec<&str> = e
        .lines()
        .filter(|l| l.starts_with("ddgsd-bench: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "expected exactly one error line, got:\n{e}");
    lines[0].to_string()
}

/// Writes an expected file with one band per (arch, arm) centred on the
/// mean of the records (tolerance `tol`) and returns its path.
pub fn expected_from(
    project: &Project,
    suite: &str,
    records: &[serde_json::Value],
    tol: f64,
    extra: &str,
) -> PathBuf {
    let mut groups: std::collections::BTreeMap<(String, String), Vec<f64>> = Default::default();
    for r in records {
        groups
            .entry((
                r["arch"].as_str().unwrap().into(),
                r["arm"].as_str().unwrap().into(),
            ))
            .or_default()
            .push(r["metrics"]["top1_final"].as_f64().unwrap());
    }
    let mut s = format!("# test expectations\nsuite = \"{suite}\"\n");
    for ((arch, arm), v) in groups {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        s.push_str(&format!(
            "\n[[band]]\narch = \"{arch}\"\narm = \"{arm}\"\nmetric = \"top1_final\"\ncentre = {mean}\ntolerance = {tol}\nseeds = {}\nsource = \"test run\"\n",
            v.len()
        ));
    }
    s.push_str(extra);
    project.write(&format!("expected/{suite}.toml"), &s)
}

/// A free TCP port on the loopback interface (a rendezvous for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// torchrun's variables for rank `rank` of `world` with the rendezvous on
/// 127.0.0.1:`port` (what `run --ranks` sets for its children).
pub fn rank_env(rank: usize, world: usize, port: impl std::fmt::Display) -> Vec<(String, String)> {
    vec![
        ("RANK".into(), rank.to_string()),
        ("WORLD_SIZE".into(), world.to_string()),
        ("LOCAL_RANK".into(), rank.to_string()),
        ("MASTER_ADDR".into(), "127.0.0.1".into()),
        ("MASTER_PORT".into(), port.to_string()),
    ]
}

/// How many times each run was trained to the end, from the `... <id> done:`
/// lines of a log.
pub fn trainings(log: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in log.lines().filter(|l| l.contains(" done: top1")) {
        let id = l
            .split(" done:")
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap();
        *m.entry(id.to_string()).or_insert(0) += 1;
    }
    m
}

/// A run's record.json in the results directory `dir` of its suite.
pub fn read_record(dir: &Path, run: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(run).join("record.json")).unwrap()).unwrap()
}
