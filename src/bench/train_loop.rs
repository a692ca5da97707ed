//! `ddgsd-bench bench --loop [--pytorch]`: the side-by-side benchmark of the
//! whole training loop.
//!
//! Four figures on one workload (the `ddgsd` arm, one architecture, 100
//! classes, synthetic 32x32 data, `--batch` images x 2 views per step):
//! - our step alone (`bench`'s step: forward + backward + SGD on fixed tensors);
//! - our loop: `train::run` itself (batch building with `[runtime] data =
//!   "device"`, the step, the read-backs) over `--steps` steps, timed from the
//!   end of a first, untimed epoch of the same length to the last read-back of
//!   the second (evaluation and checkpoints fall outside);
//! - with `--pytorch`, `bench/ddgsd_pytorch.py` (a loop written the way the
//!   public implementations are) in `step` and `loop` modes, run with the
//!   repository's venv python (`--python`, or `DDGSD_PYTHON`, or the
//!   `.venv/bin/python` of the repository above the binary).
//!
//! Images/s count source images (one per sample; each is forwarded twice).
//!
//! On a shared or small machine consecutive measurements of the same code
//! differ by 10% and more, so every figure is taken `--rounds` times,
//! interleaved (all four figures, then all four again in the reverse order),
//! and the table shows the median with the range; the ratios are ratios of
//! medians.
use crate::bench::step::{self, BenchOptions};
use crate::data;
use crate::platform;
use crate::platform::runtime::{MemoryFormat, Precision};
use crate::suite::{self, config::Overrides};
use crate::train::{self, RunContext, Tick};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// What `bench --loop` measures.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    pub arch: String,
    pub batch: i64,
    /// Timed steps (the untimed first epoch has as many).
    pub steps: usize,
    /// Untimed warm-up steps of the step-only figures.
    pub warmup: usize,
    pub device: String,
    pub threads: usize,
    /// Also run the PyTorch script.
    pub pytorch: bool,
    pub python: Option<PathBuf>,
    /// DataLoader workers of the PyTorch loop.
    pub workers: usize,
    /// Interleaved repetitions of every figure.
    pub rounds: usize,
    pub precision: Precision,
    pub memory_format: MemoryFormat,
}

fn names(o: &LoopOptions) -> (&'static str, &'static str) {
    (
        match o.precision {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        },
        match o.memory_format {
            MemoryFormat::Contiguous => "contiguous",
            MemoryFormat::ChannelsLast => "channels_last",
        },
    )
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub what: String,
    /// Source images per second.
    pub images_per_second: f64,
    pub ms_per_step: f64,
    /// Fastest and slowest ms/step over the rounds (equal for one round).
    pub range_ms: (f64, f64),
}

impl Figure {
    pub fn new(what: impl Into<String>, images_per_step: f64, ms_per_step: f64) -> Figure {
        Figure {
            what: what.into(),
            images_per_second: images_per_step * 1000.0 / ms_per_step,
            ms_per_step,
            range_ms: (ms_per_step, ms_per_step),
        }
    }

    /// The median of several measurements of one figure (ms/step; the
    /// mean of the middle two for an even count) with their range.
    pub fn median(samples: &[Figure]) -> Figure {
        let mut ms: Vec<f64> = samples.iter().map(|f| f.ms_per_step).collect();
        ms.sort_by(f64::total_cmp);
        let k = ms.len();
        let med = if k % 2 == 1 {
            ms[k / 2]
        } else {
            (ms[k / 2 - 1] + ms[k / 2]) / 2.0
        };
        let f = &samples[0];
        let per_step = f.images_per_second * f.ms_per_step / 1000.0;
        Figure {
            range_ms: (ms[0], ms[k - 1]),
            ..Figure::new(f.what.clone(), per_step, med)
        }
    }
}

pub fn suite_text(o: &LoopOptions) -> String {
    format!(
        r#"name = "bench_loop"
seeds = [0]
architectures = ["{arch}"]
arms = ["ddgsd"]

[dataset]
name = "synthetic"
classes = 100
train = {train}
test = 100

[train]
epochs = 2
batch_size = {batch}
milestones = []

[runtime]
device = "{device}"
threads = {threads}
data = "device"
checkpoint_every = 2
precision = "{precision}"
memory_format = "{memory_format}"
"#,
        arch = o.arch,
        train = o.batch as usize * o.steps,
        batch = o.batch,
        device = o.device,
        threads = o.threads,
        precision = names(o).0,
        memory_format = names(o).1,
    )
}

/// Our training loop: the second epoch of a two-epoch run, in `dir`.
pub fn loop_figure(o: &LoopOptions, dir: &Path) -> Result<Figure> {
    let file = dir.join("bench_loop.toml");
    std::fs::write(&file, suite_text(o)).with_context(|| format!("writing {}", file.display()))?;
    let s = suite::load(&file, &Overrides::default())?;
    let cfg = &s.runs[0];
    platform::init(&cfg.runtime)?;
    let device = platform::select_device(&cfg.runtime)?;
    let env = platform::collect(device, &cfg.runtime, crate::data::imagenet::decode::DECODER);
    let data = data::open(&s.dataset)?;
    let stop = AtomicBool::new(false);
    let ctx = RunContext {
        cfg,
        data: data.as_ref(),
        dir: &dir.join("run"),
        device,
        env: &env,
        stop: &stop,
        group: None,
        teacher: None,
    };
    std::fs::create_dir_all(ctx.dir)?;
    let (mut start, mut end) = (None, None);
    let mut on_tick = |t: Tick| {
        if t.epoch == 0 && t.epoch_log.is_some() {
            start = Some(Instant::now());
        } else if t.epoch == 1 && t.step == t.steps && t.epoch_log.is_none() {
            end = Some(Instant::now());
        }
    };
    train::run(&ctx, &mut on_tick)?;
    let (Some(a), Some(b)) = (start, end) else {
        bail!("the benchmark run did not report its second epoch");
    };
    let secs = (b - a).as_secs_f64();
    Ok(Figure::new(
        "ddgsd-bench loop (`run`: data on the device, step, read-backs)",
        o.batch as f64,
        1000.0 * secs / o.steps as f64,
    ))
}

/// The python and the script: `--python`, `DDGSD_PYTHON`, or the venv of
/// the repository above the binary (or the current directory).
pub fn find_python(explicit: Option<&Path>) -> Result<(PathBuf, PathBuf)> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    let root = roots
        .iter()
        .find(|r| r.join("bench/ddgsd_pytorch.py").is_file())
        .context("bench --pytorch: bench/ddgsd_pytorch.py not found above the binary or the current directory")?;
    let python = match explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("DDGSD_PYTHON").map(PathBuf::from))
    {
        Some(p) => p,
        None => {
            let p = root.join(".venv/bin/python");
            if !p.exists() {
                bail!(
                    "bench --pytorch: {} not found; pass --python or set DDGSD_PYTHON to a python with torch and torchvision",
                    p.display()
                );
            }
            p
        }
    };
    Ok((python, root.join("bench/ddgsd_pytorch.py")))
}

/// One figure of the PyTorch script (`mode` = `step` or `loop`).
pub fn pytorch_figure(o: &LoopOptions, python: &Path, script: &Path, mode: &str) -> Result<Figure> {
    let dev = match o.device.as_str() {
        "auto" if tch::Cuda::is_available() => "cuda".to_string(),
        "auto" => "cpu".to_string(),
        d => d.to_string(),
    };
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["--mode", mode, "--arch", &o.arch, "--classes", "100"])
        .args([
            "--batch",
            &o.batch.to_string(),
            "--steps",
            &o.steps.to_string(),
        ])
        .args(["--warmup", &o.warmup.max(1).to_string()])
        .args(["--threads", &o.threads.to_string(), "--device", &dev])
        .args(["--workers", &o.workers.to_string()])
        .args(match o.precision {
            Precision::Bf16 => &["--bf16"][..],
            Precision::Fp32 => &[][..],
        })
        .args(match o.memory_format {
            MemoryFormat::ChannelsLast => &["--channels-last"][..],
            MemoryFormat::Contiguous => &[][..],
        })
        .output()
        .with_context(|| format!("bench --pytorch: cannot start {}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let v: serde_json::Value = match (out.status.success(), serde_json::from_str(line)) {
        (true, Ok(v)) => v,
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!(
                "bench --pytorch: {} {} --mode {mode} failed: {}",
                python.display(),
                script.display(),
                err.lines().last().unwrap_or(line)
            );
        }
    };
    let num = |k: &str| {
        v[k].as_f64()
            .with_context(|| format!("bench --pytorch: no `{k}` in {line}"))
    };
    let what = if mode == "loop" {
        format!(
            "PyTorch loop (DataLoader, {} workers, torchvision transforms)",
            o.workers
        )
    } else {
        "PyTorch step (forward + backward + SGD)".into()
    };
    Ok(Figure::new(what, o.batch as f64, num("ms_per_step")?))
}

/// The markdown table and the ratios (`ours / theirs`) that exist.
pub fn table(title: &str, figs: &[Figure]) -> String {
    let mut s = format!(
        "{title}\n\n| | source images/s | views/s | ms/step | ms/step range |\n|---|---:|---:|---:|---:|\n"
    );
    for f in figs {
        s.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1}-{:.1} |\n",
            f.what,
            f.images_per_second,
            2.0 * f.images_per_second,
            f.ms_per_step,
            f.range_ms.0,
            f.range_ms.1
        ));
    }
    let get = |p: &str| {
        figs.iter()
            .find(|f| f.what.starts_with(p))
            .map(|f| f.images_per_second)
    };
    let pairs = [
        (
            "our loop / PyTorch loop",
            "ddgsd-bench loop",
            "PyTorch loop",
        ),
        (
            "our step / PyTorch step",
            "ddgsd-bench step",
            "PyTorch step",
        ),
        (
            "our loop / our step",
            "ddgsd-bench loop",
            "ddgsd-bench step",
        ),
    ];
    let ratios: Vec<String> = pairs
        .iter()
        .filter_map(|(name, a, b)| Some(format!("{name} {:.2}x", get(a)? / get(b)?)))
        .collect();
    if !ratios.is_empty() {
        s.push_str(&format!("\nRatios: {}.\n", ratios.join("; ")));
    }
    s
}

/// Runs the figures (progress on stderr) and returns the table.
pub fn run(o: &LoopOptions) -> Result<String> {
    if o.batch < 1 || o.steps == 0 || o.threads == 0 || o.rounds == 0 {
        bail!("bench --loop: --batch, --steps, --threads and --rounds must be at least 1");
    }
    let pyt = if o.pytorch {
        Some(find_python(o.python.as_deref())?)
    } else {
        None
    };
    let tmp = tempfile::tempdir().context("bench --loop: cannot make a temporary directory")?;
    let bo = BenchOptions {
        archs: vec![o.arch.clone()],
        batch: o.batch,
        steps: o.steps,
        warmup: o.warmup,
        device: o.device.clone(),
        threads: Some(o.threads),
        precision: o.precision,
        memory_format: o.memory_format,
        arm: "ddgsd".into(),
    };
    let device = platform::select_device(&suite_rt(o))?;
    // The figures in table order; a round measures them in this order and
    // the next round in the reverse one, so no figure always runs first.
    let kinds: &[&str] = if pyt.is_some() {
        &["our step", "our loop", "PyTorch step", "PyTorch loop"]
    } else {
        &["our step", "our loop"]
    };
    let mut rounds: Vec<Vec<Figure>> = Vec::new();
    for r in 1..=o.rounds {
        let tag = format!("round {r}/{}", o.rounds);
        let mut figs: Vec<Option<Figure>> = vec![None; kinds.len()];
        let order: Vec<usize> = if r % 2 == 1 {
            (0..kinds.len()).collect()
        } else {
            (0..kinds.len()).rev().collect()
        };
        for k in order {
            let fig = match kinds[k] {
                "our step" => {
                    eprintln!(
                        "bench: {tag}: our step ({} warm-up + {} steps)",
                        o.warmup, o.steps
                    );
                    let row = step::bench_one(&o.arch, "ddgsd", &bo, device)?;
                    Figure::new(
                        "ddgsd-bench step (forward + backward + SGD)",
                        o.batch as f64,
                        row.ms_per_step,
                    )
                }
                "our loop" => {
                    eprintln!("bench: {tag}: our loop ({} + {} steps)", o.steps, o.steps);
                    let dir = tmp.path().join(format!("round{r}"));
                    std::fs::create_dir_all(&dir)?;
                    loop_figure(o, &dir)?
                }
                mode => {
                    let (py, script) = pyt.as_ref().expect("PyTorch figures only with --pytorch");
                    eprintln!("bench: {tag}: {mode} ({})", py.display());
                    let m = if mode == "PyTorch step" {
                        "step"
                    } else {
                        "loop"
                    };
                    pytorch_figure(o, py, script, m)?
                }
            };
            figs[k] = Some(fig);
        }
        rounds.push(
            figs.into_iter()
                .map(|f| f.expect("every figure measured"))
                .collect(),
        );
    }
    let figs: Vec<Figure> = (0..rounds[0].len())
        .map(|i| Figure::median(&rounds.iter().map(|r| r[i].clone()).collect::<Vec<_>>()))
        .collect();
    let title = format!(
        "DDGSD arm, {}, 100 classes, synthetic 32x32, batch {} images x 2 views, {} timed steps, median of {} interleaved rounds, device {}, {} threads, {}, {}",
        o.arch,
        o.batch,
        o.steps,
        o.rounds,
        o.device,
        o.threads,
        names(o).0,
        names(o).1
    );
    Ok(table(&title, &figs))
}

fn suite_rt(o: &LoopOptions) -> crate::platform::runtime::RuntimeConfig {
    crate::platform::runtime::RuntimeConfig {
        precision: o.precision,
        ..crate::platform::runtime::RuntimeConfig::plain(&o.device, o.threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(what: &str, ips: f64) -> Figure {
        Figure::new(what, 128.0, 128.0 / ips * 1000.0)
    }

    #[test]
    fn table_prints_every_figure_and_the_ratios_that_exist() {
        let t = table(
            "title",
            &[
                fig("ddgsd-bench step (x)", 300.0),
                fig("ddgsd-bench loop (x)", 294.0),
                fig("PyTorch step", 290.0),
                fig("PyTorch loop (x)", 280.0),
            ],
        );
        assert!(
            t.contains("| ddgsd-bench loop (x) | 294.0 | 588.0 | 435.4 | 435.4-435.4 |"),
            "{t}"
        );
        assert!(t.contains("our loop / PyTorch loop 1.05x"), "{t}");
        assert!(t.contains("our step / PyTorch step 1.03x"), "{t}");
        assert!(t.contains("our loop / our step 0.98x"), "{t}");
        let t = table("title", &[fig("ddgsd-bench step (x)", 300.0)]);
        assert!(!t.contains("Ratios"), "{t}");
    }

    #[test]
    fn the_median_of_the_rounds_and_their_range() {
        let m = Figure::median(&[fig("a", 100.0), fig("a", 400.0), fig("a", 200.0)]);
        assert_eq!(m.ms_per_step, 640.0);
        assert_eq!(m.range_ms, (320.0, 1280.0));
        assert!((m.images_per_second - 200.0).abs() < 1e-9);
        let m = Figure::median(&[fig("a", 100.0), fig("a", 200.0)]);
        assert_eq!(m.ms_per_step, 960.0);
        assert!((m.images_per_second - 128.0 / 0.96).abs() < 1e-9);
    }
}
