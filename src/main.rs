//! The `ddgsd-bench` command line: a thin layer over the library.
//! Exit codes: 0 every band and claim holds, 1 something is out of band,
//! 2 the input or the environment is wrong (one line on stderr says what).
use anyhow::Result;
use clap::{Parser, Subcommand};
use ddgsd_bench::error::InputError;
use ddgsd_bench::expected::Expected;
use ddgsd_bench::report;
use ddgsd_bench::runner::{self, RunOptions, SuiteOutcome};
use ddgsd_bench::suite::{self, resolve::Overrides, Plan};
use ddgsd_bench::{checkpoint, results};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ddgsd-bench",
    version,
    about = "Reproducibility harness for Data-Distortion Guided Self-Distillation (Xu & Liu, AAAI 2019)",
    long_about = "Trains every (architecture, arm, seed) run of a suite deterministically, checks the \
accuracies against the tolerance bands of its expected file and renders comparison tables.\n\n\
Exit codes: 0 every band and claim holds; 1 something is out of band; 2 the input or the environment is wrong."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train every run of a suite (skipping finished runs, resuming unfinished ones), check and print the table
    Run {
        /// Suite file (TOML); default: the smoke suite, suites/smoke.toml
        #[arg(default_value = "suites/smoke.toml")]
        suite: PathBuf,
        /// Parent of the results directory (<out>/<suite name>/)
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Expected file (default: the suite's `expected` field, or expected/<suite name>.toml)
        #[arg(long)]
        expected: Option<PathBuf>,
        /// Override runtime.threads (results are bit-identical only at a fixed thread count; the record says it was overridden)
        #[arg(long)]
        threads: Option<usize>,
        /// Override runtime.device: auto, cpu, cuda, cuda:N
        #[arg(long)]
        device: Option<String>,
        /// Resume: skip finished runs and continue unfinished ones from their last checkpoint (also the default when the results directory exists)
        #[arg(long)]
        resume: bool,
        /// Train only; do not check against an expected file
        #[arg(long)]
        no_check: bool,
        /// Run only this worker's share, hash:M/N (1 <= M <= N), and skip the check: N workers
        /// (one per GPU, a Slurm array) write run directories that merge by copying
        #[arg(long)]
        partition: Option<String>,
    },
    /// Re-check a results directory against its expected file, without training
    Check {
        /// Results directory of one suite, e.g. results/smoke
        results: PathBuf,
        /// Expected file (default: the one recorded when the suite ran)
        #[arg(long)]
        expected: Option<PathBuf>,
    },
    /// Render the table of a results directory
    Report {
        /// Results directory of one suite, e.g. results/smoke
        results: PathBuf,
        /// Output format
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "csv", "json"])]
        format: String,
        /// Expected file (default: the one recorded when the suite ran, if it exists)
        #[arg(long)]
        expected: Option<PathBuf>,
    },
    /// List the runs a suite would do, with their resolved settings
    Plan {
        /// Suite file (TOML)
        suite: PathBuf,
        /// Print the resolved config of every run as JSON instead
        #[arg(long)]
        json: bool,
    },
    /// Write the checkpoint hashes of a finished suite into its expected file, under this platform
    Pin {
        /// Results directory of one suite, e.g. results/smoke
        results: PathBuf,
        /// Expected file (default: the one recorded when the suite ran)
        #[arg(long)]
        expected: Option<PathBuf>,
    },
    /// Print the environment a run would record (versions, device, threads, determinism flags, platform) as JSON
    Env {
        /// Device: auto, cpu, cuda, cuda:N
        #[arg(long, default_value = "auto")]
        device: String,
        /// Thread count to pin
        #[arg(long, default_value_t = ddgsd_bench::suite::resolve::DEFAULT_THREADS)]
        threads: usize,
        /// Leave libtorch's deterministic-algorithm switches off
        #[arg(long)]
        nondeterministic: bool,
    },
    /// Datasets: fetch CIFAR, verify, fingerprint, pack ImageNet, benchmark the loader
    Data {
        #[command(subcommand)]
        cmd: ddgsd_bench::data::cli::DataCmd,
    },
    /// Recompute checkpoint_sha256 from a model .safetensors file
    Hash {
        /// A model.safetensors written by ddgsd-bench (or any safetensors file)
        checkpoint: PathBuf,
    },
    /// List every architecture with its input kind and parameter count
    Models {
        /// Classes of the final layer (default: 10 for CIFAR networks, 1000 for ImageNet ones)
        #[arg(long)]
        classes: Option<i64>,
    },
    /// Time forward + backward + SGD of one DDGSD step (two views concatenated) per architecture
    Bench {
        /// Architecture (repeatable; default: every one `models` lists)
        #[arg(long = "arch")]
        archs: Vec<String>,
        /// Images per step (each forwarded twice)
        #[arg(long, default_value_t = 128)]
        batch: i64,
        /// Timed steps
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Untimed warm-up steps
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// auto, cpu, cuda, cuda:N
        #[arg(long, default_value = "auto")]
        device: String,
        /// libtorch intra-op threads (default: libtorch's choice; 2 with --loop)
        #[arg(long)]
        threads: Option<usize>,
        /// Time the whole training loop of `run` (data on the device included) next to the step alone, on one architecture (default resnet20, 100 classes, synthetic data)
        #[arg(long = "loop")]
        full_loop: bool,
        /// Also run bench/ddgsd_pytorch.py (a PyTorch loop written like the public implementations) on the same workload and print the ratios (implies --loop)
        #[arg(long)]
        pytorch: bool,
        /// Python for --pytorch (default: $DDGSD_PYTHON, else the .venv/bin/python of the repository above the binary)
        #[arg(long)]
        python: Option<std::path::PathBuf>,
        /// DataLoader workers of the PyTorch loop
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// fp32, or bf16 autocast (convolutions and matmuls)
        #[arg(long, default_value = "fp32", value_parser = ["fp32", "bf16"])]
        precision: String,
        /// contiguous or channels_last (weights and inputs)
        #[arg(long = "memory-format", default_value = "contiguous", value_parser = ["contiguous", "channels_last"])]
        memory_format: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // libtorch errors surface as panics inside tch (e.g. an op without a
    // deterministic implementation): report them as one line, exit 2.
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli)));
    let result = result.unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        let first = msg
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        Err(anyhow::anyhow!("libtorch: {first}"))
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ddgsd-bench: error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The error chain on one line, outermost context first.
fn one_line(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    s.replace('\n', " ")
}

fn verdict_code(passed: bool) -> u8 {
    if passed {
        0
    } else {
        1
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    match cli.cmd {
        Cmd::Run {
            suite: file,
            out,
            expected,
            threads,
            device,
            resume: _,
            no_check,
            partition,
        } => {
            let s = suite::load(&file, &Overrides { threads, device })?;
            let partition = partition
                .as_deref()
                .map(ddgsd_bench::suite::partition::Partition::parse)
                .transpose()?;
            let opts = RunOptions {
                out,
                expected,
                check: !no_check && partition.is_none(),
                partition,
            };
            match runner::run_suite(&s, &opts)? {
                SuiteOutcome::Done(Some(v)) => Ok(verdict_code(v.passed())),
                SuiteOutcome::Done(None) => Ok(0),
                SuiteOutcome::Interrupted => Ok(130),
            }
        }
        Cmd::Check {
            results: dir,
            expected,
        } => {
            let loaded = results::load(&dir)?;
            let exp = runner::load_expected(expected.as_deref(), &loaded.meta.expected_file)?;
            if !loaded.incomplete.is_empty() {
                eprintln!(
                    "ddgsd-bench: {} runs have no record yet: {}",
                    loaded.incomplete.len(),
                    loaded.incomplete.join(", ")
                );
            }
            let (v, md) = runner::judge_and_write(&loaded, &exp)?;
            print!("{md}");
            Ok(verdict_code(v.passed()))
        }
        Cmd::Report {
            results: dir,
            format,
            expected,
        } => {
            let loaded = results::load(&dir)?;
            let exp = match expected {
                Some(p) => Expected::load(&p)?,
                None if PathBuf::from(&loaded.meta.expected_file).exists() => {
                    Expected::load(&PathBuf::from(&loaded.meta.expected_file))?
                }
                None => Expected::none(&loaded.meta.suite),
            };
            let v = ddgsd_bench::check::judge(
                &loaded.records,
                &exp,
                &loaded.meta.archs,
                &loaded.meta.arms,
            );
            let exporter = report::exporter(&format)
                .ok_or_else(|| InputError::new(&dir, None, format!("unknown format `{format}`")))?;
            print!("{}", exporter.render(&v)?);
            Ok(0)
        }
        Cmd::Plan { suite: file, json } => {
            let s = suite::load(&file, &Overrides::default())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s.runs)?);
            } else {
                print!("{}", Plan::new(&s).describe());
            }
            Ok(0)
        }
        Cmd::Pin {
            results: dir,
            expected,
        } => {
            let loaded = results::load(&dir)?;
            let path = expected.unwrap_or_else(|| PathBuf::from(&loaded.meta.expected_file));
            if loaded.records.is_empty() {
                return Err(InputError::new(&dir, None, "no finished runs to pin").into());
            }
            let n = ddgsd_bench::pin::write_pins(&path, &loaded.records)?;
            let plats: std::collections::BTreeSet<&str> =
                loaded.records.iter().map(|r| r.platform.as_str()).collect();
            eprintln!(
                "ddgsd-bench: {n} pins written to {} for {} runs on platform {}",
                path.display(),
                loaded.records.len(),
                plats.into_iter().collect::<Vec<_>>().join(", ")
            );
            Ok(0)
        }
        Cmd::Env {
            device,
            threads,
            nondeterministic,
        } => {
            let rt = ddgsd_bench::suite::resolve::RuntimeConfig {
                device,
                threads,
                threads_overridden: false,
                precision: ddgsd_bench::suite::resolve::Precision::Fp32,
                deterministic: !nondeterministic,
                checkpoint_every: 1,
                data: Default::default(),
                memory_format: Default::default(),
            };
            ddgsd_bench::platform::init(&rt)?;
            let dev = ddgsd_bench::platform::select_device(&rt)?;
            let env = ddgsd_bench::platform::collect(dev, &rt);
            let mut v = serde_json::to_value(&env)?;
            v["platform"] = serde_json::Value::String(env.platform());
            v["cuda_available"] = serde_json::Value::Bool(tch::Cuda::is_available());
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        Cmd::Data { cmd } => ddgsd_bench::data::cli::run(cmd),
        Cmd::Hash { checkpoint: path } => {
            println!("{}  {}", checkpoint::hash_file(&path)?, path.display());
            Ok(0)
        }
        Cmd::Models { classes } => {
            print!("{}", ddgsd_bench::model::registry_table(classes)?);
            Ok(0)
        }
        Cmd::Bench {
            archs,
            batch,
            steps,
            warmup,
            device,
            threads,
            full_loop,
            pytorch,
            python,
            workers,
            precision,
            memory_format,
        } => {
            use ddgsd_bench::suite::config::{MemoryFormat, Precision};
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
            if full_loop || pytorch {
                if archs.len() > 1 {
                    anyhow::bail!("bench --loop: one --arch at a time, got {}", archs.len());
                }
                let o = ddgsd_bench::bench_loop::LoopOptions {
                    arch: archs.first().cloned().unwrap_or_else(|| "resnet20".into()),
                    batch,
                    steps,
                    warmup,
                    device,
                    threads: threads.unwrap_or(2),
                    pytorch,
                    python,
                    workers,
                    precision,
                    memory_format,
                };
                print!("{}", ddgsd_bench::bench_loop::run(&o)?);
                return Ok(0);
            }
            let opts = ddgsd_bench::bench::BenchOptions {
                archs,
                batch,
                steps,
                warmup,
                device,
                threads,
                precision,
                memory_format,
            };
            print!("{}", ddgsd_bench::bench::run(&opts)?);
            Ok(0)
        }
    }
}
