//! The `run` command: train every run of a suite (or a worker's share), then judge it.
use super::verdict_code;
use crate::schedule::runner::{self, RunOptions, SuiteOutcome};
use crate::schedule::{lease, workers};
use crate::suite::partition::Partition;
use crate::suite::{self, resolve::Overrides};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

// The flags of `run` (its help text is the doc comment of `Cmd::Run`).
#[derive(Args)]
pub struct RunArgs {
    /// Suite file (TOML); default: the smoke suite, suites/smoke.toml
    #[arg(default_value = "suites/smoke.toml")]
    pub suite: PathBuf,
    /// Parent of the results directory (<out>/<suite name>/)
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Expected file (default: the suite's `expected` field, or expected/<suite name>.toml)
    #[arg(long)]
    pub expected: Option<PathBuf>,
    /// Override runtime.threads (results are bit-identical only at a fixed thread count; the record says it was overridden)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Override runtime.device: auto, cpu, cuda, cuda:N
    #[arg(long)]
    pub device: Option<String>,
    /// Resume: skip finished runs and continue unfinished ones from their last checkpoint (also the default when the results directory exists)
    #[arg(long)]
    pub resume: bool,
    /// Train only; do not check against an expected file
    #[arg(long)]
    pub no_check: bool,
    /// Run only this worker's share, hash:M/N (1 <= M <= N), and skip the check: N workers
    /// (one per GPU, a Slurm array) write run directories that merge by copying
    #[arg(long)]
    pub partition: Option<String>,
    /// Start one worker process per entry on this results directory, e.g.
    /// cuda:0,cuda:1 or cpu,cpu (an entry may repeat); each sees only its GPU
    /// (CUDA_VISIBLE_DEVICES), so set runtime.device to auto or cuda
    #[arg(long, value_name = "LIST")]
    pub workers: Option<String>,
    /// When the runs left are held by other workers, wait for them (taking over
    /// any whose lease goes stale) and check the suite, instead of stopping
    #[arg(long)]
    pub wait: bool,
    /// Seconds without a heartbeat after which another worker's lease on a run is
    /// stale and the run is taken over [env: DDGSD_LEASE_TIMEOUT; default 300]
    #[arg(long, value_name = "SECS")]
    pub lease_timeout: Option<f64>,
    /// Name of this worker in its leases (set by --workers and the Slurm scripts)
    #[arg(long, hide = true)]
    pub worker_label: Option<String>,
}

pub fn run(args: RunArgs) -> Result<u8> {
    let RunArgs {
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
    } = args;
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
