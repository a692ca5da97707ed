//! Running a suite: set up the process, load the data once, train every
//! planned run (skipping finished ones, resuming unfinished ones), then judge
//! and render. Progress goes to stderr; the table to stdout.
use crate::data;
use crate::gate::check::{self, Verdict};
use crate::gate::expected::Expected;
use crate::platform;
use crate::results::{self, Loaded};
use crate::schedule::command::{check_command, run_command};
use crate::schedule::lease::{self, Claim, LeaseInfo};
use crate::schedule::progress::Progress;
use crate::schedule::ranks::{self, Announce, RankCtx};
use crate::schedule::teacher::{self, Binding};
use crate::suite::resolve::Overrides;
use crate::suite::ResolvedSuite;
use crate::train::record::{Record, RECORD_FILE};
use crate::train::{self, Outcome, Tick};
use crate::util::atomic;
use crate::util::error::InputError;
use crate::util::exit::{Exit, NoVerdict};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM: runs stop at the next step after a checkpoint.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // Second signal: give up at once.
        unsafe { libc::_exit(130) };
    }
}

/// Installs the Ctrl-C / SIGTERM handler.
pub fn install_signal_handlers() {
    // SAFETY: the handler only touches an atomic and calls _exit.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

#[derive(Clone)]
pub struct RunOptions {
    pub out: PathBuf,
    /// `--expected`, as given.
    pub expected: Option<PathBuf>,
    /// False with `--no-check`: the user asked not to judge.
    pub check: bool,
    /// Only this worker's share of the runs (`--partition hash:M/N`).
    pub partition: Option<crate::suite::partition::Partition>,
    /// When the runs left are held by other workers: wait for them (and
    /// take over any whose lease goes stale) instead of stopping.
    pub wait: bool,
    /// A lease whose heartbeat is older than this is stale.
    pub lease_timeout: Duration,
    /// Names this worker in its leases (e.g. its device; empty: its pid).
    pub worker: String,
    /// This process's rank of a data-parallel group (`--ranks`, torchrun,
    /// srun): rank 0 is the worker, the other ranks follow it.
    pub rank: Option<std::sync::Arc<RankCtx>>,
    /// `--threads` / `--device`, as given (the suite is resolved with them).
    pub overrides: Overrides,
    /// `--workers`, as given (normalised), for the commands printed.
    pub workers: Option<String>,
    /// A worker started for a GPU entry of `--workers`: training on the CPU
    /// (its GPU not visible after all) is an error, not a silent fallback.
    pub require_gpu: bool,
}

impl RunOptions {
    /// The defaults of `run` for results under `out`.
    pub fn new(out: PathBuf) -> Self {
        RunOptions {
            out,
            expected: None,
            check: true,
            partition: None,
            wait: false,
            lease_timeout: lease::DEFAULT_TIMEOUT,
            worker: String::new(),
            overrides: Overrides::default(),
            workers: None,
            require_gpu: false,
            rank: None,
        }
    }

    fn mine<'a>(&self, suite: &'a ResolvedSuite) -> Vec<&'a crate::suite::RunConfig> {
        suite
            .runs
            .iter()
            .filter(|c| self.partition.is_none_or(|p| p.holds(suite, c)))
            .collect()
    }
}

/// What `run` ended with.
pub enum SuiteOutcome {
    /// Every planned run is finished and was judged (the table is printed).
    Judged(Box<Verdict>),
    /// `--no-check`: this worker's part is done; nothing was judged.
    Trained,
    /// Stopped without a verdict: why, and which command gives it.
    NoVerdict(NoVerdict),
    /// Stopped by a signal after checkpointing.
    Interrupted,
}

impl SuiteOutcome {
    pub fn exit(&self) -> Exit {
        match self {
            SuiteOutcome::Judged(v) => v.exit(),
            SuiteOutcome::Trained => Exit::Pass,
            SuiteOutcome::NoVerdict(_) => Exit::NoVerdict,
            SuiteOutcome::Interrupted => Exit::Interrupted,
        }
    }
}

/// Loads the expected file a `run` checks against: `explicit`, else the
/// suite's.
pub fn load_expected(explicit: Option<&Path>, suite_expected: &Path) -> Result<Expected> {
    let path = explicit.unwrap_or(suite_expected);
    if !path.exists() {
        bail!(InputError::new(
            path,
            None,
            "expected file not found (give one with --expected, or --no-check to skip checking)"
        ));
    }
    Expected::load(path)
}

/// Judges a loaded results directory and writes table.md / verdict.json
/// next to the records. A directory that cannot be written (a read-only
/// archive of results) is still judged: a warning says that the table was
/// not saved.
pub fn judge_and_write(loaded: &Loaded, expected: &Expected) -> Result<(Verdict, String)> {
    let v = check::judge_dir(loaded, expected)?;
    let md = crate::report::check_markdown(&crate::report::Judged {
        loaded,
        expected,
        verdict: &v,
    })?;
    let json = serde_json::to_string_pretty(&crate::report::verdict_json(&v)?)? + "\n";
    let saved = atomic::write(&loaded.dir.join("table.md"), md.as_bytes())
        .and_then(|_| atomic::write(&loaded.dir.join("verdict.json"), json.as_bytes()));
    if let Err(e) = saved {
        eprintln!(
            "ddgsd-bench: warning: {}: table.md and verdict.json not written ({}); the verdict below stands",
            loaded.dir.display(),
            crate::util::error::one_line(&e)
        );
    }
    Ok((v, md))
}

/// The runs still held by other workers, for a message.
fn held_list(held: &[(String, LeaseInfo)]) -> String {
    held.iter()
        .map(|(id, h)| format!("{id} ({})", h.holder()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `student (teacher t), ...`, for a message.
fn waiting_list(waiting: &[(String, String)]) -> String {
    waiting
        .iter()
        .map(|(s, t)| format!("{s} (teacher {t})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs that finished meanwhile drop out of `held`.
fn still_held(dir: &Path, held: &mut Vec<(String, LeaseInfo)>) {
    held.retain(|(id, _)| !dir.join(id).join(RECORD_FILE).exists());
}

/// Stopping while other workers hold runs: no verdict (or, with
/// `--no-check`, this worker's part is done).
fn stop_held(
    suite: &ResolvedSuite,
    opts: &RunOptions,
    dir: &Path,
    held: &[(String, LeaseInfo)],
    waiting: &[(String, String)],
) -> SuiteOutcome {
    let mut why = format!(
        "nothing left to claim; {} run(s) are held by other workers: {}",
        held.len(),
        held_list(held)
    );
    if !waiting.is_empty() {
        why.push_str(&format!(
            "; {} run(s) wait for their teachers: {}",
            waiting.len(),
            waiting_list(waiting)
        ));
    }
    if !opts.check {
        eprintln!("ddgsd-bench: {why}; stopping (--no-check: nothing to judge)");
        return SuiteOutcome::Trained;
    }
    let waiting = RunOptions {
        wait: true,
        ..opts.clone()
    };
    SuiteOutcome::NoVerdict(NoVerdict::new(
        why,
        format!(
            "the worker that finishes the last run checks the suite; or `{}` (waits for them), or `{}` once they are finished",
            run_command(&suite.file, &waiting),
            check_command(dir, None)
        ),
    ))
}

pub fn run_suite(suite: &ResolvedSuite, opts: &RunOptions) -> Result<SuiteOutcome> {
    if let Some(r) = opts.rank.as_ref().filter(|r| r.group.rank() > 0) {
        return ranks::run_follower(suite, &opts.out, r);
    }
    let group = opts.rank.as_ref().map(|r| &r.group);
    // Expected file first: a missing one is an input error before hours of training.
    let expected = expected_for(suite, opts)?;
    // Read-only checks first: nothing is written before the input is known good.
    results::check_suite_dir(&opts.out, suite)?;
    let dir = opts.out.join(&suite.name);
    let mine = opts.mine(suite);
    let mut pending = Vec::new();
    for &cfg in &mine {
        let rec = dir.join(&cfg.run_id).join(RECORD_FILE);
        if rec.exists() {
            Record::load(&rec)?;
            if let Some(who) = lease::clear_stale(&dir.join(&cfg.run_id), opts.lease_timeout)? {
                eprintln!(
                    "ddgsd-bench: {}: finished; removed the lease its worker left ({who})",
                    cfg.run_id
                );
            }
            continue;
        }
        pending.push(cfg);
    }
    let rt = &suite.runs[0].runtime;
    platform::init(rt)?;
    let device = match &opts.rank {
        Some(r) => r.device,
        None => platform::select_device(rt)?,
    };
    if opts.require_gpu && device == tch::Device::Cpu {
        bail!(
            "worker `{}` was started for a GPU, but CUDA_VISIBLE_DEVICES={} shows it none: refusing to train on the CPU",
            opts.worker,
            std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default()
        );
    }
    let mut env = platform::collect(device, rt, crate::data::imagenet::decode::DECODER);
    if let Some(g) = group {
        env.set_group(g.backend().name(), g.peers());
    }
    // The data before anything is written (a missing dataset is an input error).
    let dataset = if pending.is_empty() {
        None
    } else {
        let d = open_dataset(suite)?;
        crate::suite::resolve::check_against_data(suite, d.info().train_len)?;
        Some(d)
    };
    let dir = results::prepare(
        &opts.out,
        suite,
        expected.as_ref().map(|e| e.file.as_path()),
        &opts.overrides,
    )?;
    install_signal_handlers();
    let total = mine.len();
    eprintln!(
        "ddgsd-bench: suite `{}`: {total} runs, {} already finished; device {} ({}), {} threads; results in {}",
        suite.name,
        total - pending.len(),
        env.device,
        env.device_name,
        env.threads,
        dir.display()
    );
    let mut progress = Progress::new(total);
    // Students already said to wait for their teacher.
    let mut told = std::collections::BTreeSet::new();
    loop {
        let mut held = Vec::new();
        // Students whose teacher is unfinished: (student, teacher).
        let mut waiting: Vec<(String, String)> = Vec::new();
        let before = pending.len();
        let mut k = 0;
        while k < pending.len() {
            let cfg = pending[k];
            let run_dir = dir.join(&cfg.run_id);
            if run_dir.join(RECORD_FILE).exists() {
                pending.remove(k); // finished by another worker
                continue;
            }
            // A student is never claimed before its teacher is finished
            // (the suite's order puts the teacher first, so this worker
            // trains it first when it can).
            let bound = match teacher::bind(&dir, cfg)? {
                Binding::Ready(b) => b,
                Binding::Waiting(t) => {
                    waiting.push((cfg.run_id.clone(), t));
                    k += 1;
                    continue;
                }
            };
            if STOP.load(Ordering::SeqCst) {
                if let Some(g) = group {
                    ranks::announce(g, Announce::Stop)?;
                }
                eprintln!(
                    "\nddgsd-bench: interrupted. Resume with: {}",
                    run_command(&suite.file, opts)
                );
                return Ok(SuiteOutcome::Interrupted);
            }
            std::fs::create_dir_all(&run_dir)
                .map_err(|e| InputError::new(&run_dir, None, format!("cannot create: {e}")))?;
            let lease = match lease::try_claim(&run_dir, &opts.worker, opts.lease_timeout)? {
                Claim::Held(h) => {
                    held.push((cfg.run_id.clone(), h));
                    k += 1;
                    continue;
                }
                Claim::Acquired(l) => l,
            };
            if run_dir.join(RECORD_FILE).exists() {
                pending.remove(k); // finished between the look and the claim
                continue;
            }
            if let Some(from) = &lease.taken_over {
                eprintln!(
                    "ddgsd-bench: {}: taking the run over from {from}",
                    cfg.run_id
                );
            }
            let mut left = results::run_dir::remove_leftovers(&run_dir);
            left.extend(lease::remove_leftovers(&run_dir));
            if !left.is_empty() {
                eprintln!(
                    "ddgsd-bench: {}: removed {} temporary file(s) a killed worker left: {}",
                    cfg.run_id,
                    left.len(),
                    left.join(", ")
                );
            }
            // With its teacher bound, a student begun on another teacher is
            // refused (every run was checked as planned before training).
            if bound.cfg.teacher_run().is_some() {
                results::check_run_dir(&run_dir, &bound.cfg)?;
            }
            results::claim_run_dir(&run_dir, &bound.cfg)?;
            let data = dataset.clone().expect("opened when runs are pending");
            let ctx = train::RunContext {
                cfg: &bound.cfg,
                teacher: bound.teacher.as_deref(),
                data: data.as_ref(),
                dir: &run_dir,
                device,
                env: &env,
                stop: &STOP,
                group,
            };
            if let Some(g) = group {
                let index = suite.runs.iter().position(|c| c.run_id == cfg.run_id);
                ranks::announce(g, Announce::Run(index.expect("a run of the suite")))?;
            }
            let i = mine
                .iter()
                .position(|c| c.run_id == cfg.run_id)
                .unwrap_or(0)
                + 1;
            let units = progress.units(cfg, data.info().train_len, &pending);
            let mut on_tick = |t: Tick| {
                if t.epoch_log.is_some() {
                    lease.heartbeat(); // every epoch end, just before its checkpoint
                }
                progress.tick(i, cfg, units, &t);
            };
            match train::run(&ctx, &mut on_tick)? {
                Outcome::Finished(r) => {
                    eprintln!(
                        "[run {i}/{total}] {} done: top1 final {:.2}% best {:.2}% (epoch {}), {:.0} img/s, checkpoint {}",
                        r.run_id,
                        r.metrics.top1_final,
                        r.metrics.top1_best,
                        r.metrics.best_epoch,
                        r.timing.train_images_per_second,
                        &r.checkpoint_sha256[..16]
                    );
                }
                Outcome::Stopped { epoch, step } => {
                    drop(lease); // released: any worker may resume it now
                    eprintln!(
                        "\nddgsd-bench: interrupted; {} checkpointed at epoch {} step {}. Resume with: {}",
                        cfg.run_id,
                        epoch + 1,
                        step,
                        run_command(&suite.file, opts)
                    );
                    return Ok(SuiteOutcome::Interrupted);
                }
            }
            progress.finished(units);
            drop(lease);
            pending.remove(k);
        }
        if pending.is_empty() {
            if let Some(g) = group {
                ranks::announce(g, Announce::Done)?;
            }
            break;
        }
        // Runs seen held earlier in this pass may have finished since.
        still_held(&dir, &mut held);
        if held.is_empty() {
            // What waited for a teacher finished in this pass can start now.
            if pending.len() < before
                || waiting
                    .iter()
                    .any(|(_, t)| dir.join(t).join(RECORD_FILE).exists())
            {
                continue;
            }
            bail!(
                "{} run(s) wait for teachers that no worker holds and this one cannot train: {}",
                waiting.len(),
                waiting_list(&waiting)
            );
        }
        // Everything left is held by live workers.
        if let Some(g) = group {
            ranks::announce(
                g,
                if opts.wait {
                    Announce::Wait
                } else {
                    Announce::Done
                },
            )?;
        }
        if !opts.wait {
            return Ok(stop_held(suite, opts, &dir, &held, &waiting));
        }
        for (s, t) in &waiting {
            if told.insert(s.clone()) {
                let by = held
                    .iter()
                    .find(|(id, _)| id == t)
                    .map(|(_, h)| format!(", held by {}", h.holder()))
                    .unwrap_or_default();
                eprintln!("ddgsd-bench: {s} waits for its teacher {t}{by}");
            }
        }
        let poll =
            (opts.lease_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));
        let until = Instant::now() + poll;
        while Instant::now() < until && !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    conclude(suite, opts, expected)
}

/// The expected file of a run that will judge the suite (checked, with the
/// suite's architectures and arms, before any training); `None` when this
/// run will not judge (`--no-check`, a `--partition` share).
pub fn expected_for(suite: &ResolvedSuite, opts: &RunOptions) -> Result<Option<Expected>> {
    if !opts.check || opts.partition.is_some() {
        return Ok(None);
    }
    let e = load_expected(opts.expected.as_deref(), &suite.expected)?;
    e.require_suite(&suite.name, "this suite is")?;
    let archs: Vec<String> = suite.archs.iter().map(|a| a.id()).collect();
    let arms: Vec<String> = suite.arms.iter().map(|a| a.name.clone()).collect();
    e.require_plan(&archs, &arms)?;
    Ok(Some(e))
}

/// After this worker's share: runs still unfinished (held by other
/// workers) end without a verdict; a partition says how to merge; else the
/// suite is checked and its table written.
pub fn conclude(
    suite: &ResolvedSuite,
    opts: &RunOptions,
    expected: Option<Expected>,
) -> Result<SuiteOutcome> {
    let dir = opts.out.join(&suite.name);
    let mine = opts.mine(suite);
    let mut held: Vec<(String, LeaseInfo)> = Vec::new();
    let mut open = Vec::new();
    for c in &mine {
        let run_dir = dir.join(&c.run_id);
        if run_dir.join(RECORD_FILE).exists() {
            continue;
        }
        match lease::read(&run_dir)? {
            Some(h) if lease::stale_reason(&h, opts.lease_timeout).is_none() => {
                held.push((c.run_id.clone(), h))
            }
            _ => open.push(c.run_id.clone()),
        }
    }
    if !open.is_empty() {
        // Unfinished and unclaimed: a worker stopped without finishing them.
        let why = format!(
            "{} run(s) are unfinished and held by nobody: {}",
            open.len(),
            open.join(", ")
        );
        return Ok(SuiteOutcome::NoVerdict(NoVerdict::new(
            why,
            format!("`{}` trains them", run_command(&suite.file, opts)),
        )));
    }
    if !held.is_empty() {
        return Ok(stop_held(suite, opts, &dir, &held, &[]));
    }
    if let Some(p) = opts.partition {
        let done = format!(
            "partition {}/{}: its {} of the suite's {} runs are trained",
            p.m,
            p.n,
            mine.len(),
            suite.runs.len()
        );
        if !opts.check {
            eprintln!("ddgsd-bench: {done} (--no-check: nothing to judge)");
            return Ok(SuiteOutcome::Trained);
        }
        return Ok(SuiteOutcome::NoVerdict(NoVerdict::new(
            format!("{done}, unchecked: a share is not the suite"),
            format!(
                "copy the run directories of all {} shares into one results directory and run `{}`",
                p.n,
                check_command(&dir, opts.expected.as_deref())
            ),
        )));
    }
    let Some(expected) = expected else {
        return Ok(SuiteOutcome::Trained);
    };
    let loaded = results::load(&dir)?;
    let (v, md) = judge_and_write(&loaded, &expected)?;
    print!("{md}");
    if !v.complete() {
        // The recorded plan has runs this suite does not (another worker's
        // suite added them since).
        return Ok(SuiteOutcome::NoVerdict(
            crate::schedule::command::unfinished(&loaded, opts.expected.as_deref()),
        ));
    }
    Ok(SuiteOutcome::Judged(Box::new(v)))
}

fn open_dataset(suite: &ResolvedSuite) -> Result<std::sync::Arc<dyn data::Dataset>> {
    let t0 = Instant::now();
    let d = data::open(&suite.dataset)?;
    eprintln!(
        "ddgsd-bench: dataset {} ({} train / {} test, fingerprint {}) ready in {:.1}s",
        d.info().name,
        d.info().train_len,
        d.info().test_len,
        &d.info().fingerprint[..16],
        t0.elapsed().as_secs_f64()
    );
    Ok(d)
}
