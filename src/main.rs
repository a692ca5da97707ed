//! The `ddgsd-bench` command line: a thin layer over the library.
//! Exit codes: 0 every band and claim holds, 1 something is out of band,
//! 2 the input or the environment is wrong (one line on stderr says what).
use anyhow::Result;
use clap::{Parser, Subcommand};
use ddgsd_bench::error::InputError;
use ddgsd_bench::report;
use ddgsd_bench::runner::{self, RunOptions, SuiteOutcome};
use ddgsd_bench::suite::partition::Partition;
use ddgsd_bench::suite::{self, resolve::Overrides, Plan};
use ddgsd_bench::{checkpoint, lease, results, slurm, workers};
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
        /// Start one worker process per entry on this results directory, e.g.
        /// cuda:0,cuda:1 or cpu,cpu (an entry may repeat); each sees only its GPU
        /// (CUDA_VISIBLE_DEVICES), so set runtime.device to auto or cuda
        #[arg(long, value_name = "LIST")]
        workers: Option<String>,
        /// When the runs left are held by other workers, wait for them (taking over
        /// any whose lease goes stale) and check the suite, instead of stopping
        #[arg(long)]
        wait: bool,
        /// Seconds without a heartbeat after which another worker's lease on a run is
        /// stale and the run is taken over [env: DDGSD_LEASE_TIMEOUT; default 300]
        #[arg(long, value_name = "SECS")]
        lease_timeout: Option<f64>,
        /// Name of this worker in its leases (set by --workers and the Slurm scripts)
        #[arg(long, hide = true)]
        worker_label: Option<String>,
    },
    /// Write Slurm batch scripts for a suite (a job array of workers and a check job after it), and submit them with --submit
    Slurm {
        /// Suite file (TOML)
        suite: PathBuf,
        /// Parent of the results directory, on storage every node shares
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Tasks in the array (workers; claims balance uneven runs)
        #[arg(long)]
        array: u32,
        /// GPUs per task (more than one: a worker per GPU in each task)
        #[arg(long)]
        gpus_per_task: Option<u32>,
        /// CPUs per task
        #[arg(long)]
        cpus_per_task: Option<u32>,
        /// Time limit per task (sbatch --time); a worker gets SIGTERM 2 minutes before and checkpoints
        #[arg(long)]
        time: Option<String>,
        /// Extra sbatch option for both scripts, e.g. --sbatch-arg=--partition=gpu (repeatable)
        #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
        sbatch_args: Vec<String>,
        /// Expected file for the check job (default: the suite's; it must exist)
        #[arg(long)]
        expected: Option<PathBuf>,
        /// Override runtime.threads in the workers
        #[arg(long)]
        threads: Option<usize>,
        /// Lease timeout of the workers in seconds (see `run --lease-timeout`)
        #[arg(long, value_name = "SECS")]
        lease_timeout: Option<f64>,
        /// Call sbatch for both scripts and print the job ids
        #[arg(long)]
        submit: bool,
    },
    /// Re-check a results directory against its expected file, without training
    Check {
        /// Results directory of one suite, e.g. results/smoke
        results: PathBuf,
        /// Expected file (default: the one recorded when the suite ran)
        #[arg(long)]
        expected: Option<PathBuf>,
    },
    /// Render the table of one results directory (ablation layout) or of several (paper layout), and training-curve figures
    Report {
        /// Results directories, e.g. results/smoke (several with --layout paper: CIFAR-10, CIFAR-100, ImageNet)
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Output format
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "latex", "csv", "json"])]
        format: String,
        /// ablation: rows architecture, columns arm (one directory); paper: the paper's Table 3, rows architecture and method, columns dataset
        #[arg(long, default_value = "ablation", value_parser = ["ablation", "paper"])]
        layout: String,
        /// top1, top5, or error (100 - top-1, what the paper prints)
        #[arg(long, default_value = "top1", value_parser = ["top1", "top5", "error"])]
        metric: String,
        /// The accuracy after the last epoch, or the best over epochs
        #[arg(long, default_value = "final", value_parser = ["final", "best"])]
        which: String,
        /// Expected file (default: the one recorded when the suite ran, if it exists); once per results directory
        #[arg(long)]
        expected: Vec<PathBuf>,
        /// LaTeX: wrap the tabular in a table float
        #[arg(long)]
        float: bool,
        /// LaTeX: caption of the float (implies --float; default: the table's title)
        #[arg(long)]
        caption: Option<String>,
        /// LaTeX: label of the float (implies --float)
        #[arg(long)]
        label: Option<String>,
        /// Also write training curves (SVG and PNG per suite and architecture) into this folder
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Compare two results directories of one suite (another platform, another commit): Δ per run and metric, checkpoint equality, a verdict under the expected file's tolerances (markdown)
    Compare {
        /// Results directory A (the reference), e.g. results/smoke
        a: PathBuf,
        /// Results directory B, of the same suite
        b: PathBuf,
        /// Expected file whose band tolerances judge the Δ (default: the one recorded in A)
        #[arg(long)]
        expected: Option<PathBuf>,
    },
    /// Write or update the bands of an expected file from reference runs (centre = mean over seeds, tolerance = max(floor, k x seed sd)); published bands, comments, claims and pins are kept
    Calibrate {
        /// Results directory of the reference runs, e.g. results/smoke
        results: PathBuf,
        /// Expected file to write (default: the one recorded when the suite ran; created when missing)
        #[arg(long)]
        expected: Option<PathBuf>,
        /// Metric of the bands
        #[arg(long, default_value = "top1_final", value_parser = ["top1_final", "top1_best"])]
        metric: String,
        /// Tolerance = max(floor, k x the seeds' sample sd)
        #[arg(long, default_value_t = 2.0)]
        k: f64,
        /// Smallest tolerance, in accuracy points
        #[arg(long, default_value_t = 0.5)]
        floor: f64,
    },
    /// List the runs a suite would do, with their resolved settings
    Plan {
        /// Suite file (TOML)
        suite: PathBuf,
        /// Print the resolved config of every run as JSON instead
        #[arg(long)]
        json: bool,
        /// Only worker M's share of N (hash:M/N), as `run --partition` would train it
        #[arg(long)]
        partition: Option<String>,
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
        /// With --loop: measure every figure this many times, interleaved (our loop, our step, PyTorch step, PyTorch loop, then again), and print the median and the range
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// fp32, or bf16 autocast (convolutions and matmuls)
        #[arg(long, default_value = "fp32", value_parser = ["fp32", "bf16"])]
        precision: String,
        /// contiguous or channels_last (weights and inputs)
        #[arg(long = "memory-format", default_value = "contiguous", value_parser = ["contiguous", "channels_last"])]
        memory_format: String,
    },
}

fn main() -> ExitCode {
    // Before libtorch allocates: keep freed CPU tensor memory (see heap.rs).
    ddgsd_bench::heap::tune();
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
            workers,
            wait,
            lease_timeout,
            worker_label,
        } => {
            let ov = Overrides { threads, device };
            let s = suite::load(&file, &ov)?;
            let partition = partition.as_deref().map(Partition::parse).transpose()?;
            let opts = RunOptions {
                out,
                expected,
                check: !no_check && partition.is_none(),
                partition,
                wait,
                lease_timeout: lease::timeout(lease_timeout)?,
                worker: worker_label.unwrap_or_else(|| format!("pid {}", std::process::id())),
            };
            let outcome = match workers {
                Some(list) => {
                    let entries = workers::parse_list(&list)?;
                    workers::run_suite(&s, &opts, &entries, &ov)?
                }
                None => runner::run_suite(&s, &opts)?,
            };
            match outcome {
                SuiteOutcome::Done(Some(v)) => Ok(verdict_code(v.passed())),
                SuiteOutcome::Done(None) => Ok(0),
                SuiteOutcome::Interrupted => Ok(130),
            }
        }
        Cmd::Slurm {
            suite: file,
            out,
            array,
            gpus_per_task,
            cpus_per_task,
            time,
            sbatch_args,
            expected,
            threads,
            lease_timeout,
            submit,
        } => {
            let s = suite::load(&file, &Overrides::default())?;
            // The check job's expected file must exist now, not after hours of training.
            let expected = expected.unwrap_or_else(|| s.expected.clone());
            runner::load_expected(Some(&expected), "")?.require_suite(&s.name, "this suite is")?;
            let o = slurm::SlurmOptions {
                suite_file: file,
                suite_name: s.name.clone(),
                out,
                expected: Some(expected),
                array,
                gpus_per_task,
                cpus_per_task,
                time,
                sbatch_args,
                threads,
                lease_timeout,
            };
            let scripts = slurm::write(&o)?;
            println!("{}", scripts.worker.display());
            println!("{}", scripts.check.display());
            if submit {
                let (a, c) = slurm::submit(&scripts)?;
                println!("array job {a} ({array} workers), check job {c} (after the array)");
                println!("watch:  squeue -j {a},{c}");
                println!("logs:   tail -f {}/worker-{a}_*.out", scripts.dir.display());
                println!("result: sacct -j {c} --format=JobID,State,ExitCode  (exit code 0 pass, 1 out of band, 2 input); {}/check-{c}.out has the table", scripts.dir.display());
            } else {
                println!(
                    "submit: a=$(sbatch --parsable {}) && sbatch --dependency=afterany:$a {} $a",
                    scripts.worker.display(),
                    scripts.check.display()
                );
            }
            Ok(0)
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
            results: dirs,
            format,
            layout,
            metric,
            which,
            expected,
            float,
            caption,
            label,
            plot,
        } => {
            use ddgsd_bench::report::{Layout, MetricKind, Options, Which};
            let opts = Options {
                layout: Layout::parse(&layout).expect("clap checked"),
                metric: MetricKind::parse(&metric).expect("clap checked"),
                which: Which::parse(&which).expect("clap checked"),
            };
            if opts.layout == Layout::Ablation && dirs.len() > 1 {
                return Err(InputError::new(
                    &dirs[1],
                    None,
                    "the ablation layout renders one results directory; use --layout paper for several",
                )
                .into());
            }
            if !expected.is_empty() && expected.len() != dirs.len() {
                return Err(InputError::new(
                    &expected[0],
                    None,
                    format!(
                        "--expected given {} times for {} results directories (give it once per directory, or not at all)",
                        expected.len(),
                        dirs.len()
                    ),
                )
                .into());
            }
            let inputs = dirs
                .iter()
                .enumerate()
                .map(|(i, d)| report::Input::load(d, expected.get(i).map(PathBuf::as_path)))
                .collect::<Result<Vec<_>>>()?;
            let judged: Vec<_> = inputs.iter().map(|i| i.judged()).collect();
            let r = report::build(&judged, &opts);
            let out = if format == "latex" {
                let latex = report::Latex {
                    float: float || caption.is_some() || label.is_some(),
                    caption,
                    label,
                };
                report::Exporter::render(&latex, &r, &judged)?
            } else {
                let exporter = report::exporter(&format).expect("clap checked");
                exporter.render(&r, &judged)?
            };
            if let Some(folder) = plot {
                for i in &inputs {
                    for f in ddgsd_bench::plot::write_curves(&i.loaded, &folder)? {
                        eprintln!("ddgsd-bench: wrote {}", f.display());
                    }
                }
            }
            print!("{out}");
            Ok(0)
        }
        Cmd::Compare { a, b, expected } => {
            let la = results::load(&a)?;
            let lb = results::load(&b)?;
            let exp = runner::load_expected(expected.as_deref(), &la.meta.expected_file)?;
            let c = ddgsd_bench::compare::compare(&la, &lb, &exp)?;
            print!("{}", ddgsd_bench::compare::markdown(&c));
            Ok(verdict_code(c.passed()))
        }
        Cmd::Calibrate {
            results: dir,
            expected,
            metric,
            k,
            floor,
        } => {
            use ddgsd_bench::calibrate::{calibrate, today, Rule};
            let loaded = results::load(&dir)?;
            if loaded.records.is_empty() {
                return Err(
                    InputError::new(&dir, None, "no finished runs to calibrate from").into(),
                );
            }
            let path = expected.unwrap_or_else(|| PathBuf::from(&loaded.meta.expected_file));
            let rule = Rule {
                metric: if metric == "top1_best" {
                    ddgsd_bench::expected::Metric::Top1Best
                } else {
                    ddgsd_bench::expected::Metric::Top1Final
                },
                k,
                floor,
            };
            let plats: std::collections::BTreeSet<&str> =
                loaded.records.iter().map(|r| r.platform.as_str()).collect();
            let note = format!(
                " on {}, {}",
                plats.into_iter().collect::<Vec<_>>().join(", "),
                today()
            );
            let o = calibrate(&path, &loaded.meta.suite, &loaded.records, &rule, &note)?;
            eprintln!(
                "ddgsd-bench: {}: {} bands added, {} updated, {} published bands kept; review the diff before merging",
                path.display(),
                o.added,
                o.updated,
                o.kept_published
            );
            Ok(0)
        }
        Cmd::Plan {
            suite: file,
            json,
            partition,
        } => {
            let s = suite::load(&file, &Overrides::default())?;
            let part = partition.as_deref().map(Partition::parse).transpose()?;
            if json {
                let runs: Vec<_> = s
                    .runs
                    .iter()
                    .filter(|r| part.is_none_or(|p| p.contains(&r.run_id)))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print!("{}", Plan::new(&s).describe(part));
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
                deterministic: !nondeterministic,
                ..ddgsd_bench::suite::resolve::RuntimeConfig::plain(&device, threads)
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
            rounds,
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
                    rounds,
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
