//! The `bench` command: a training step per architecture, or the whole loop (`--loop`, `--pytorch`).
use crate::util::exit::Exit;
use anyhow::Result;
use clap::Args;

// The flags of `bench` (its help text is the doc comment of `Cmd::Bench`).
#[derive(Args)]
pub struct BenchArgs {
    /// Architecture (repeatable; default: every one `models` lists)
    #[arg(long = "arch")]
    pub archs: Vec<String>,
    /// Images per step (each forwarded once per view)
    #[arg(long, default_value_t = 128)]
    pub batch: i64,
    /// The built-in arm whose step is timed (baseline, the DDGSD ablation arms, cs_kd, ps_kd, tf_kd_reg, label_smoothing, tf_kd_self with a teacher of the same architecture, byot with its heads); any arm but baseline is shown beside the baseline's step, with the ratio. `--loop` times the ddgsd arm
    #[arg(long, default_value = "ddgsd")]
    pub arm: String,
    /// Timed steps
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// auto, cpu, cuda, cuda:N
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch intra-op threads (default: libtorch's choice; 2 with --loop)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Time the whole training loop of `run` (data on the device included) next to the step alone, on one architecture (default resnet20, 100 classes, synthetic data)
    #[arg(long = "loop")]
    pub full_loop: bool,
    /// Also run bench/ddgsd_pytorch.py (a PyTorch loop written like the public implementations) on the same workload and print the ratios (implies --loop)
    #[arg(long)]
    pub pytorch: bool,
    /// Python for --pytorch (default: $DDGSD_PYTHON, else the .venv/bin/python of the repository above the binary)
    #[arg(long)]
    pub python: Option<std::path::PathBuf>,
    /// DataLoader workers of the PyTorch loop
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// With --loop: measure every figure this many times, interleaved (our loop, our step, PyTorch step, PyTorch loop, then again), and print the median and the range
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// fp32, or bf16 autocast (convolutions and matmuls)
    #[arg(long, default_value = "fp32", value_parser = ["fp32", "bf16"])]
    pub precision: String,
    /// contiguous or channels_last (weights and inputs)
    #[arg(long = "memory-format", default_value = "contiguous", value_parser = ["contiguous", "channels_last"])]
    pub memory_format: String,
    /// With --loop: train the loop as a data-parallel run at each of these rank counts (e.g. 1,2;
    /// `run --ranks N`, this binary) and print images/s and the scaling efficiency; on the CPU
    /// --threads is split over the ranks
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub ranks: Vec<usize>,
}

pub fn bench(args: BenchArgs) -> Result<Exit> {
    let BenchArgs {
        archs,
        batch,
        arm,
        steps,
        warmup,
        device,
        threads,
        full_loop,
        pytorch,
        python,
        workers,
        rounds,
        precision,
        memory_format,
        ranks,
    } = args;
    use crate::platform::runtime::{MemoryFormat, Precision};
    let precision = if precision == "bf16" {
        Precision::Bf16
    } else {
        Precision::Fp32
    };
    let memory_format = if memory_format == "channels_last" {
        MemoryFormat::ChannelsLast
    } else {
        MemoryFormat::Contiguous
    };
    if !ranks.is_empty() && (pytorch || !full_loop) {
        anyhow::bail!("bench --ranks: only with --loop (and without --pytorch)");
    }
    if full_loop || pytorch {
        if arm != "ddgsd" {
            anyhow::bail!(
                "bench --loop: the loop benchmark times the ddgsd arm; drop --arm {arm} or --loop"
            );
        }
        if archs.len() > 1 {
            anyhow::bail!("bench --loop: one --arch at a time, got {}", archs.len());
        }
        let o = crate::bench::train_loop::LoopOptions {
            arch: archs.first().cloned().unwrap_or_else(|| "resnet20".into()),
            batch,
            steps,
            warmup,
            device,
            threads: threads.unwrap_or(2),
            pytorch,
            python,
            workers,
            rounds,
            precision,
            memory_format,
        };
        if !ranks.is_empty() {
            print!("{}", crate::bench::scaling::run(&o, &ranks)?);
            return Ok(Exit::Pass);
        }
        print!("{}", crate::bench::train_loop::run(&o)?);
        return Ok(Exit::Pass);
    }
    let opts = crate::bench::step::BenchOptions {
        archs,
        batch,
        steps,
        warmup,
        device,
        threads,
        precision,
        memory_format,
        arm,
    };
    print!("{}", crate::bench::step::run(&opts)?);
    Ok(Exit::Pass)
}
