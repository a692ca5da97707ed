//! `ddgsd-bench bench`: a speed sanity check of one training step per
//! architecture on the current device, for one arm (default `ddgsd`).
//!
//! One step is what `train` does for the arm, minus data loading: the views
//! of a batch of N images (random tensors, made once; a method's partner
//! view is one more random view) go through the forward passes of the arm's
//! plan, its loss is computed by the method itself (`method::build`, the
//! built-in arm's constants: for `ddgsd` the loss of docs/method.md §2 with
//! lambda 1, mu 5e-4, T 1), back-propagated, and `sgd::Sgd` (momentum 0.9,
//! Nesterov, weight decay 5e-4) updates the weights, through the trainer's
//! own step (`train::step`). PS-KD's memory has 50,000 rows (CIFAR's
//! training split) and is read from epoch 1 on, as in every epoch but the
//! first. After `warmup` untimed steps, `steps` steps are timed (CUDA
//! synchronised before the clock is read). Images/s counts every forwarded
//! view (2N per step for a two-view arm or CS-KD's anchors and partners).
//! For any arm but `baseline` the baseline's step is measured too, right
//! before it, and the table gives the arm's ms/step as a multiple of it.
//!
//! Peak memory: on the CPU, the process's peak resident set (VmHWM of
//! /proc/self/status, reset through /proc/self/clear_refs before each
//! architecture where the kernel allows it); on CUDA, the memory nvidia-smi
//! reports for this process after the timed steps, which is what PyTorch's
//! caching allocator holds (it does not give memory back between
//! architectures, so later rows include earlier ones: bench one architecture
//! per invocation for a clean number).
use crate::method::{self, arms, loss::LossConfig, MethodEnv};
use crate::model::{self, ArchSpec};
use crate::optim::sgd::Sgd;
use crate::platform::runtime::{MemoryFormat, Precision};
use crate::train::exec::Exec;
use crate::train::feed::Inputs;
use crate::train::step::Net;
use anyhow::{bail, Context, Result};
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// What `ddgsd-bench bench` measures.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Architectures; empty means every one `models` lists.
    pub archs: Vec<String>,
    /// Images per step (each forwarded twice, once per view).
    pub batch: i64,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before them.
    pub warmup: usize,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// libtorch intra-op threads (default: libtorch's choice).
    pub threads: Option<usize>,
    pub precision: Precision,
    pub memory_format: MemoryFormat,
    /// The built-in arm whose step is timed.
    pub arm: String,
}

/// Training samples PS-KD's memory has in the benchmark (CIFAR's split).
pub const BENCH_TRAIN_LEN: usize = 50_000;

/// One row of the table.
#[derive(Debug, Clone)]
pub struct BenchRow {
    pub arch: String,
    pub arm: String,
    pub input: &'static str,
    pub classes: i64,
    pub params: i64,
    pub images_per_second: f64,
    pub ms_per_step: f64,
    /// MiB; `None` when it cannot be read.
    pub peak_mib: Option<f64>,
    /// ms/step divided by the baseline's (the row before), for every arm
    /// but the baseline.
    pub vs_baseline: Option<f64>,
}

/// The constants of docs/method.md §2 (the built-in arms' `[loss]`).
pub fn ddgsd_loss() -> LossConfig {
    LossConfig {
        rbf_bandwidths: vec![],
        ..LossConfig::default()
    }
}

/// The built-in arm `name`, or an error listing them.
pub fn builtin_arm(name: &str) -> Result<arms::ArmConfig> {
    arms::builtin(name, &ddgsd_loss()).with_context(|| {
        format!(
            "--arm `{name}`: expected one of {}",
            arms::builtin_names().join(", ")
        )
    })
}

fn parse_device(d: &str) -> Result<Device> {
    let avail = tch::Cuda::is_available();
    match d {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(if avail { Device::Cuda(0) } else { Device::Cpu }),
        _ => {
            let idx = match d {
                "cuda" => 0,
                _ => d
                    .strip_prefix("cuda:")
                    .and_then(|n| n.parse::<usize>().ok())
                    .with_context(|| {
                        format!("--device `{d}`: expected auto, cpu, cuda or cuda:N")
                    })?,
            };
            if !avail {
                bail!("--device `{d}`, but CUDA is not available on this machine");
            }
            if idx >= tch::Cuda::device_count() as usize {
                bail!(
                    "--device `{d}`, but only {} CUDA devices exist",
                    tch::Cuda::device_count()
                );
            }
            Ok(Device::Cuda(idx))
        }
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Resets the CPU peak-RSS counter; false where the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// This process's GPU memory as nvidia-smi reports it (MiB).
fn gpu_process_mib() -> Option<f64> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    let me = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (pid, mib) = l.split_once(',')?;
        (pid.trim() == me)
            .then(|| mib.trim().parse().ok())
            .flatten()
    })
}

pub fn bench_one(arch: &str, arm: &str, opts: &BenchOptions, device: Device) -> Result<BenchRow> {
    let info = model::lookup(arch)?;
    let (classes, side) = if info.input == "imagenet" {
        (1000, 224)
    } else {
        (100, 32)
    };
    let arm_cfg = builtin_arm(arm)?;
    let plan = method::plan(&arm_cfg);
    let spec = ArchSpec {
        name: arch.to_string(),
        width: None,
    };
    tch::manual_seed(0);
    let mut vs = VarStore::new(Device::Cpu);
    let net = model::build(&spec, &vs.root(), classes)?;
    let params = model::parameter_count(&vs);
    // The auxiliary heads and a teacher of the same architecture (its
    // weights do not change the cost), where the arm's plan has them.
    let heads = plan
        .heads
        .then(|| {
            model::heads::Heads::of(&vs.root(), net.as_ref(), classes)
                .with_context(|| format!("bench --arm {arm} on {arch}"))
        })
        .transpose()?;
    let mut tvs = VarStore::new(Device::Cpu);
    let teacher = plan
        .teacher
        .then(|| model::build(&spec, &tvs.root(), classes))
        .transpose()?;
    let exec = Exec::new(device, opts.precision, opts.memory_format);
    for v in [&mut vs, &mut tvs] {
        v.set_device(device);
        exec.prepare(v)?;
    }
    let mut opt = Sgd::new(&vs, 0.9, true, 5e-4);
    let mut m = method::build(
        &arm_cfg,
        &MethodEnv {
            classes,
            train_len: BENCH_TRAIN_LEN,
            epochs: 2,
            device,
        },
    )?;
    // Epoch 1: PS-KD reads its memory (epoch 0 uses the labels alone).
    m.begin_epoch(1);
    let n = opt_batch(opts)?;
    let views = m.plan().images_per_sample() as i64;
    let inputs = Inputs {
        x: Tensor::randn([views * n, 3, side, side], (Kind::Float, device)),
        labels: Tensor::randint(classes, [n], (Kind::Int64, device)),
        samples: Tensor::randint(BENCH_TRAIN_LEN as i64, [n], (Kind::Int64, device)),
        len: n as usize,
    };
    let step_net = Net {
        net: net.as_ref(),
        exec: &exec,
        heads: heads.as_ref(),
        teacher: teacher.as_deref(),
    };
    let cpu_reset = device == Device::Cpu && reset_peak_rss();
    let mut step = || -> Result<Tensor> {
        let (loss, _) = step_net.step(m.as_mut(), &mut opt, &inputs, 1, 0.1)?;
        // Read back only after the timed steps (no per-step host sync).
        Ok(loss.total.detach())
    };
    let finite = |loss: Tensor| -> Result<()> {
        if !loss.double_value(&[]).is_finite() {
            bail!("{arch}: the loss is not finite");
        }
        Ok(())
    };
    for _ in 0..opts.warmup {
        finite(step()?)?;
    }
    sync(device);
    let t0 = Instant::now();
    let mut last = None;
    for _ in 0..opts.steps {
        last = Some(step()?);
    }
    sync(device);
    let secs = t0.elapsed().as_secs_f64();
    if let Some(loss) = last {
        finite(loss)?;
    }
    let peak_mib = match device {
        Device::Cpu if cpu_reset => peak_rss_mib(),
        Device::Cpu => None,
        _ => gpu_process_mib(),
    };
    Ok(BenchRow {
        arch: arch.to_string(),
        arm: arm.to_string(),
        input: info.input,
        classes,
        params,
        images_per_second: (views * n) as f64 * opts.steps as f64 / secs,
        ms_per_step: 1000.0 * secs / opts.steps as f64,
        peak_mib,
        vs_baseline: None,
    })
}

fn opt_batch(opts: &BenchOptions) -> Result<i64> {
    if opts.batch < 1 {
        bail!("--batch {}: expected at least 1 image", opts.batch);
    }
    Ok(opts.batch)
}

/// Runs the benchmark (progress on stderr) and returns its table.
pub fn run(opts: &BenchOptions) -> Result<String> {
    opt_batch(opts)?;
    if opts.steps == 0 {
        bail!("--steps 0: expected at least 1 timed step");
    }
    let archs: Vec<String> = if opts.archs.is_empty() {
        model::LISTED.iter().map(|s| s.to_string()).collect()
    } else {
        opts.archs.clone()
    };
    for a in &archs {
        model::lookup(a)?;
    }
    if let Some(t) = opts.threads {
        if t == 0 {
            bail!("--threads 0: expected at least 1");
        }
        tch::set_num_threads(t as i32);
    }
    builtin_arm(&opts.arm)?;
    let device = parse_device(&opts.device)?;
    let mut arms = vec![opts.arm.as_str()];
    if opts.arm != "baseline" {
        arms.insert(0, "baseline");
    }
    let mut rows: Vec<BenchRow> = Vec::new();
    for a in &archs {
        for arm in &arms {
            eprintln!(
                "bench: {a} {arm} ({} warm-up + {} timed steps of {} images x {} views)",
                opts.warmup,
                opts.steps,
                opts.batch,
                builtin_arm(arm)?.views
            );
            let mut row = bench_one(a, arm, opts, device)?;
            if *arm != "baseline" {
                row.vs_baseline = rows
                    .last()
                    .filter(|b| b.arm == "baseline" && b.arch == *a)
                    .map(|b| row.ms_per_step / b.ms_per_step);
            }
            rows.push(row);
        }
    }
    let dev = match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    };
    Ok(table(&rows, &dev, tch::get_num_threads(), opts))
}

/// The aligned table of `rows`.
pub fn table(rows: &[BenchRow], device: &str, threads: i32, opts: &BenchOptions) -> String {
    let mem_head = if device == "cpu" {
        "peak RSS MiB"
    } else {
        "GPU MiB"
    };
    let mut cells = vec![[
        "arch".to_string(),
        "arm".into(),
        "input".into(),
        "classes".into(),
        "params".into(),
        "images/s".into(),
        "ms/step".into(),
        "x baseline".into(),
        mem_head.into(),
    ]];
    for r in rows {
        cells.push([
            r.arch.clone(),
            r.arm.clone(),
            r.input.to_string(),
            r.classes.to_string(),
            model::thousands(r.params),
            format!("{:.1}", r.images_per_second),
            format!("{:.1}", r.ms_per_step),
            r.vs_baseline
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "-".into()),
            r.peak_mib
                .map(|m| format!("{m:.0}"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..cells[0].len())
        .map(|i| cells.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "device {device}, {threads} threads, {:?} {:?}, batch {} images, {} warm-up + {} timed steps (forward + backward + SGD) of the `{}` arm{}\n",
        opts.precision,
        opts.memory_format,
        opts.batch,
        opts.warmup,
        opts.steps,
        opts.arm,
        if opts.arm == "baseline" {
            ""
        } else {
            ", each after the baseline's"
        }
    );
    for (j, r) in cells.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 3 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if j == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("tpu").is_err());
        assert!(parse_device("cuda:x").is_err());
    }

    #[test]
    fn table_is_aligned() {
        let opts = BenchOptions {
            archs: vec![],
            batch: 4,
            steps: 1,
            warmup: 0,
            device: "cpu".into(),
            threads: None,
            precision: Precision::Fp32,
            memory_format: MemoryFormat::Contiguous,
            arm: "ps_kd".into(),
        };
        let row = |a: &str, arm: &str, p, x| BenchRow {
            arch: a.into(),
            arm: arm.into(),
            input: "cifar",
            classes: 100,
            params: p,
            images_per_second: 1234.5,
            ms_per_step: 6.5,
            peak_mib: Some(300.0),
            vs_baseline: x,
        };
        let t = table(
            &[
                row("resnet8", "baseline", 78_042, None),
                row("densenet_bc100", "ps_kd", 800_032, Some(1.034)),
            ],
            "cpu",
            2,
            &opts,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].contains("`ps_kd` arm, each after the baseline's"));
        assert!(lines[1].starts_with("arch "));
        assert_eq!(lines[3].len(), lines[4].len());
        assert!(lines[4].contains("800,032") && lines[4].contains("1.03x"));
        assert!(builtin_arm("nope")
            .unwrap_err()
            .to_string()
            .contains("cs_kd"));
    }
}
