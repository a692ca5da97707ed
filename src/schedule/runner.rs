//! Running a suite: set up the process, load the data once, train every
//! planned run (skipping finished ones, resuming unfinished ones), then judge
//! and render. Progress goes to stderr; the table to stdout.
use crate::data;
use crate::gate::check::{self, Verdict};
use crate::gate::expected::Expected;
use crate::platform;
use crate::results::{self, Loaded};
use crate::schedule::lease::{self, Claim};
use crate::schedule::progress::Progress;
use crate::schedule::ranks::{self, Announce, RankCtx};
use crate::suite::ResolvedSuite;
use crate::train::record::{Record, RECORD_FILE};
use crate::train::{self, Outcome, Tick};
use crate::util::atomic;
use crate::util::error::InputError;
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

pub struct RunOptions {
    pub out: PathBuf,
    pub expected: Option<PathBuf>,
    pub check: bool,
    /// Only this worker's share of the runs (`--partition hash:M/N`).
    pub partition: Option<crate::suite::partition::Partition>,
    /// When the runs left are held by other workers: wait for them (and
    /// take over any whose lease goes stale) instead of stopping.
    pub wait: bool,
    /// A lease whose heartbeat is older than this is stale.
    pub lease_timeout: Duration,
    /// Names this worker in its leases (e.g. its device).
    pub worker: String,
    /// This process's rank of a data-parallel group (`--ranks`, torchrun,
    /// srun): rank 0 is the worker, the other ranks follow it.
    pub rank: Option<std::sync::Arc<RankCtx>>,
}

/// What `run` ended with.
pub enum SuiteOutcome {
    /// Every run finished; the verdict (absent with --no-check).
    Done(Option<Box<Verdict>>),
    /// Stopped by a signal after checkpointing.
    Interrupted,
}

/// Loads the expected file of a results directory or an explicit one.
pub fn load_expected(explicit: Option<&Path>, meta_expected: &str) -> Result<Expected> {
    let path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(meta_expected));
    if !path.exists() {
        bail!(InputError::new(
            &path,
            None,
            "expected file not found (give one with --expected, or --no-check to skip checking)"
        ));
    }
    Expected::load(&path)
}

/// Judges a loaded results directory and writes table.md / verdict.json
/// next to the records.
pub fn judge_and_write(loaded: &Loaded, expected: &Expected) -> Result<(Verdict, String)> {
    expected.require_suite(&loaded.meta.suite, "results are of")?;
    let v = check::judge(
        &loaded.records,
        expected,
        &loaded.meta.archs,
        &loaded.meta.arms,
    );
    let md = crate::report::check_markdown(&crate::report::Judged {
        loaded,
        expected,
        verdict: &v,
    })?;
    atomic::write(&loaded.dir.join("table.md"), md.as_bytes())?;
    let json = serde_json::to_string_pretty(&crate::report::verdict_json(&v)?)? + "\n";
    atomic::write(&loaded.dir.join("verdict.json"), json.as_bytes())?;
    Ok((v, md))
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
    let mut pending = Vec::new();
    let mine: Vec<&crate::suite::RunConfig> = suite
        .runs
        .iter()
        .filter(|c| opts.partition.is_none_or(|p| p.contains(&c.run_id)))
        .collect();
    for &cfg in &mine {
        let run_dir = dir.join(&cfg.run_id);
        results::check_run_dir(&run_dir, cfg)?;
        let rec = run_dir.join(RECORD_FILE);
        if rec.exists() {
            Record::load(&rec)?;
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
    let mut env = platform::collect(device, rt, crate::data::imagenet::decode::DECODER);
    if let Some(g) = group {
        env.set_group(g.backend().name(), g.peers());
    }
    // The data before anything is written (a missing dataset is an input error).
    let dataset = if pending.is_empty() {
        None
    } else {
        Some(open_dataset(suite)?)
    };
    let dir = results::prepare(&opts.out, suite)?;
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
    loop {
        let mut held = Vec::new();
        let mut k = 0;
        while k < pending.len() {
            let cfg = pending[k];
            let run_dir = dir.join(&cfg.run_id);
            if run_dir.join(RECORD_FILE).exists() {
                pending.remove(k); // finished by another worker
                continue;
            }
            if STOP.load(Ordering::SeqCst) {
                if let Some(g) = group {
                    ranks::announce(g, Announce::Stop)?;
                }
                eprintln!("\nddgsd-bench: interrupted. {}", resume_hint(suite, opts));
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
            results::claim_run_dir(&run_dir, cfg)?;
            let data = dataset.clone().expect("opened when runs are pending");
            let ctx = train::RunContext {
                cfg,
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
                        "\nddgsd-bench: interrupted; {} checkpointed at epoch {} step {}. {}",
                        cfg.run_id,
                        epoch + 1,
                        step,
                        resume_hint(suite, opts)
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
        held.retain(|(id, _)| !dir.join(id).join(RECORD_FILE).exists());
        if held.is_empty() {
            continue;
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
            let who: Vec<String> = held
                .iter()
                .map(|(id, h)| format!("{id} ({} pid {} on {})", h.worker, h.pid, h.host))
                .collect();
            eprintln!(
                "ddgsd-bench: nothing left to claim; {} runs are still held by other workers: {}. Stopping without a verdict: the worker that finishes the last run checks the suite (or wait for them with --wait, or run `ddgsd-bench check {}` later)",
                held.len(),
                who.join(", "),
                dir.display()
            );
            return Ok(SuiteOutcome::Done(None));
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

/// The expected file of a run with checking on (checked before any training).
pub fn expected_for(suite: &ResolvedSuite, opts: &RunOptions) -> Result<Option<Expected>> {
    if !opts.check {
        return Ok(None);
    }
    let e = load_expected(
        opts.expected.as_deref(),
        &suite.expected.display().to_string(),
    )?;
    e.require_suite(&suite.name, "this suite is")?;
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
    let mine: Vec<&crate::suite::RunConfig> = suite
        .runs
        .iter()
        .filter(|c| opts.partition.is_none_or(|p| p.contains(&c.run_id)))
        .collect();
    let open: Vec<&str> = mine
        .iter()
        .filter(|c| !dir.join(&c.run_id).join(RECORD_FILE).exists())
        .map(|c| c.run_id.as_str())
        .collect();
    if !open.is_empty() {
        eprintln!(
            "ddgsd-bench: {} runs are not finished (held by other workers): {}. Stopping without a verdict: the worker that finishes the last run checks the suite (or use --wait, or `ddgsd-bench check {}` later)",
            open.len(),
            open.join(", "),
            dir.display()
        );
        return Ok(SuiteOutcome::Done(None));
    }
    if let Some(p) = opts.partition {
        eprintln!(
            "ddgsd-bench: partition {}/{}: {} of the suite's {} runs done; merge the results directories and run `ddgsd-bench check {}`",
            p.m,
            p.n,
            mine.len(),
            suite.runs.len(),
            dir.display()
        );
        return Ok(SuiteOutcome::Done(None));
    }
    let Some(expected) = expected else {
        return Ok(SuiteOutcome::Done(None));
    };
    let loaded = results::load(&dir)?;
    let (v, md) = judge_and_write(&loaded, &expected)?;
    print!("{md}");
    Ok(SuiteOutcome::Done(Some(Box::new(v))))
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

/// The command that resumes this worker.
fn resume_hint(suite: &ResolvedSuite, opts: &RunOptions) -> String {
    let world = suite.runs.first().map_or(1, |c| c.runtime.world_size);
    format!(
        "Resume with: ddgsd-bench run {} --out {}{}{}",
        suite.file.display(),
        opts.out.display(),
        opts.partition
            .map(|p| format!(" --partition hash:{}/{}", p.m, p.n))
            .unwrap_or_default(),
        if world > 1 {
            format!(" --ranks {world}")
        } else {
            String::new()
        }
    )
}
