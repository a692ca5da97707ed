//! Running a suite: set up the process, load the data once, train every
//! planned run (skipping finished ones, resuming unfinished ones), then judge
//! and render. Progress goes to stderr; the table to stdout.
use crate::atomic;
use crate::check::{self, Verdict};
use crate::data;
use crate::error::InputError;
use crate::expected::Expected;
use crate::platform;
use crate::record::{Record, RECORD_FILE};
use crate::results::{self, Loaded};
use crate::suite::ResolvedSuite;
use crate::train::{self, Outcome, Tick};
use anyhow::{bail, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
}

/// What `run` ended with.
pub enum SuiteOutcome {
    /// Every run finished; the verdict (absent with --no-check).
    Done(Option<Box<Verdict>>),
    /// Stopped by a signal after checkpointing.
    Interrupted,
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
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
    // Expected file first: a missing one is an input error before hours of training.
    let expected = if opts.check {
        Some(load_expected(
            opts.expected.as_deref(),
            &suite.expected.display().to_string(),
        )?)
    } else {
        None
    };
    if let Some(e) = &expected {
        e.require_suite(&suite.name, "this suite is")?;
    }
    // Read-only checks first: nothing is written before the input is known good.
    results::check_suite_dir(&opts.out, suite)?;
    let dir = opts.out.join(&suite.name);
    let mut todo = Vec::new();
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
        todo.push(cfg);
    }
    let rt = &suite.runs[0].runtime;
    platform::init(rt)?;
    let device = platform::select_device(rt)?;
    let env = platform::collect(device, rt);
    let dataset = if todo.is_empty() {
        None
    } else {
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
        Some(d)
    };
    let dir = results::prepare(&opts.out, suite)?;
    for cfg in &todo {
        results::claim_run_dir(&dir.join(&cfg.run_id), cfg)?;
    }
    install_signal_handlers();
    let total = mine.len();
    let done_before = total - todo.len();
    eprintln!(
        "ddgsd-bench: suite `{}`: {total} runs, {done_before} already finished; device {} ({}), {} threads; results in {}",
        suite.name,
        env.device,
        env.device_name,
        env.threads,
        dir.display()
    );
    if let Some(dataset) = dataset {
        // Work units for the ETA: image-views over the whole plan.
        let n = dataset.info().train_len as f64;
        let units =
            |c: &crate::suite::RunConfig| n * f64::from(c.train.epochs) * f64::from(c.arm.views);
        let total_units: f64 = todo.iter().map(|c| units(c)).sum();
        let mut done_units = 0.0;
        let start = Instant::now();
        let tty = std::io::stderr().is_terminal();
        for (k, cfg) in todo.iter().enumerate() {
            let i = done_before + k + 1;
            let run_dir = dir.join(&cfg.run_id);
            let ctx = train::RunContext {
                cfg,
                data: dataset.as_ref(),
                dir: &run_dir,
                device,
                env: &env,
                stop: &STOP,
            };
            let run_units = units(cfg);
            let mut last_print = Instant::now();
            let mut on_tick = |t: Tick| {
                let frac =
                    (f64::from(t.epoch) + t.step as f64 / t.steps as f64) / f64::from(t.epochs);
                let done = done_units + frac * run_units;
                let el = start.elapsed().as_secs_f64();
                let eta = if done > 0.0 {
                    el / done * (total_units - done)
                } else {
                    f64::NAN
                };
                if let Some(log) = t.epoch_log {
                    eprintln!(
                        "{}[run {i}/{total}] {} epoch {}/{} loss {:.4} (ce {:.4} kl {:.4} mmd {:.4}) train {:.1}% test top1 {:.2}% top5 {:.2}% | {:.1}s | ETA {}",
                        if tty { "\r\x1b[2K" } else { "" },
                        cfg.run_id,
                        log.epoch,
                        t.epochs,
                        log.loss,
                        log.ce,
                        log.kl,
                        log.mmd,
                        log.train_top1,
                        log.test_top1,
                        log.test_top5,
                        log.seconds,
                        fmt_secs(eta)
                    );
                } else if tty && last_print.elapsed().as_millis() > 200 {
                    last_print = Instant::now();
                    eprint!(
                        "\r\x1b[2K[run {i}/{total}] {} epoch {}/{} step {}/{} loss {:.4} | ETA {}",
                        cfg.run_id,
                        t.epoch + 1,
                        t.epochs,
                        t.step,
                        t.steps,
                        t.loss,
                        fmt_secs(eta)
                    );
                }
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
                    eprintln!(
                        "\nddgsd-bench: interrupted; {} checkpointed at epoch {} step {}. Resume with: ddgsd-bench run {} --out {}",
                        cfg.run_id,
                        epoch + 1,
                        step,
                        suite.file.display(),
                        opts.out.display()
                    );
                    return Ok(SuiteOutcome::Interrupted);
                }
            }
            done_units += run_units;
        }
    }
    if let Some(p) = opts.partition {
        eprintln!(
            "ddgsd-bench: partition {}/{}: {total} of the suite's {} runs done; merge the results directories and run `ddgsd-bench check {}`",
            p.m,
            p.n,
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
