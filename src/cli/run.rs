//! The `run` command: train every run of a suite (or a worker's share), then judge it.
use crate::platform::launch;
use crate::schedule::runner::{self, RunOptions, SuiteOutcome};
use crate::schedule::{lease, ranks, workers};
use crate::suite::partition::Partition;
use crate::suite::{self, resolve::Overrides};
use crate::util::exit::Exit;
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
    /// Train only; do not check against an expected file (exit 0 once this worker's part is trained)
    #[arg(long)]
    pub no_check: bool,
    /// Run only this worker's share, hash:M/N (1 <= M <= N): N workers (one per GPU, a
    /// Slurm array) write run directories that merge by copying; a share is not judged
    /// (exit 3 naming the check to run after the merge; exit 0 with --no-check)
    #[arg(long)]
    pub partition: Option<String>,
    /// Start one worker process per entry on this results directory, e.g.
    /// cuda:0,cuda:1 or cpu,cpu (an entry may repeat); each sees only its GPU
    /// (CUDA_VISIBLE_DEVICES), so set runtime.device to auto or cuda; an entry
    /// for a GPU this process cannot see is refused. A worker killed by a
    /// signal nobody sent is reported and replaced on its entry. With --ranks N
    /// every N consecutive entries are one data-parallel worker (cuda:0,...,cuda:7
    /// --ranks 4: two workers of four GPUs)
    #[arg(long, value_name = "LIST")]
    pub workers: Option<String>,
    /// When the runs left are held by other workers, wait for them (taking over
    /// any whose lease goes stale) and check the suite, instead of stopping
    /// without a verdict (exit 3)
    #[arg(long)]
    pub wait: bool,
    /// Seconds without a heartbeat after which another worker's lease on a run is
    /// stale and the run is taken over [env: DDGSD_LEASE_TIMEOUT; default 300]
    #[arg(long, value_name = "SECS")]
    pub lease_timeout: Option<f64>,
    /// Name of this worker in its leases (set by --workers and the Slurm scripts)
    #[arg(long, hide = true)]
    pub worker_label: Option<String>,
    /// Train each run data-parallel over N rank processes (overrides runtime.world_size;
    /// the bits depend on it): started here, one GPU each on CUDA (shared round-robin when
    /// there are fewer), or CPU ranks; with --workers, every N consecutive entries form one
    /// worker of N ranks. Under torchrun's or srun's environment the process joins that
    /// group instead (and N, when given, must equal its size)
    #[arg(long, value_name = "N")]
    pub ranks: Option<usize>,
    /// Set by --workers for a GPU entry: refuse to train on the CPU
    #[arg(long, hide = true)]
    pub worker_gpu: bool,
}

pub fn run(args: RunArgs) -> Result<Exit> {
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
        ranks,
        worker_gpu,
    } = args;
    // A launcher (torchrun, srun, `--ranks` itself) made this process a rank.
    let launched = launch::from_env()?;
    let world_size = match (&launched, ranks) {
        (Some(e), Some(n)) if n != e.world => anyhow::bail!(
            "--ranks {n}: this process is rank {} of a group of {} started by {}",
            e.rank,
            e.world,
            match e.source {
                launch::Source::Torchrun => "torchrun's environment (WORLD_SIZE)",
                launch::Source::Srun => "srun (SLURM_STEP_NUM_TASKS)",
            }
        ),
        (Some(e), _) => Some(e.world),
        (None, n) => n,
    };
    let ov = Overrides {
        threads,
        device,
        world_size,
    };
    let s = suite::load(&file, &ov)?;
    let world = s.runs[0].runtime.world_size;
    if world > 1 && launched.is_none() && workers.is_none() {
        // Start the ranks here; each is this command line with torchrun's variables.
        let args: Vec<String> = std::env::args().skip(1).collect();
        return ranks::launch_local(&s.runs[0].runtime, world, &args);
    }
    let rank = match launched {
        Some(e) => Some(std::sync::Arc::new(ranks::join(&s, e)?)),
        None => None,
    };
    let partition = partition.as_deref().map(Partition::parse).transpose()?;
    let entries = workers
        .as_deref()
        .map(|l| workers::group_ranks(workers::parse_list(l)?, world))
        .transpose()?;
    let opts = RunOptions {
        expected,
        check: !no_check,
        partition,
        wait,
        lease_timeout: lease::timeout(lease_timeout)?,
        worker: worker_label.unwrap_or_default(),
        overrides: ov,
        workers: entries.as_ref().map(|e| workers::list_text(e)),
        require_gpu: worker_gpu,
        rank,
        ..RunOptions::new(out)
    };
    let outcome = match &entries {
        Some(entries) => workers::run_suite(&s, &opts, entries)?,
        None => runner::run_suite(&s, &opts)?,
    };
    if let SuiteOutcome::NoVerdict(nv) = &outcome {
        eprintln!("{nv}");
    }
    Ok(outcome.exit())
}
