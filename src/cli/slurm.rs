//! The `slurm` command: write (and submit) the batch scripts of a suite.
use crate::schedule::{runner, slurm};
use crate::suite::{self, resolve::Overrides};
use crate::util::exit::Exit;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

// The flags of `slurm` (its help text is the doc comment of `Cmd::Slurm`).
#[derive(Args)]
pub struct SlurmArgs {
    /// Suite file (TOML)
    pub suite: PathBuf,
    /// Parent of the results directory, on storage every node shares
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Tasks in the array (workers; claims balance uneven runs); at most the plan's runs
    #[arg(long)]
    pub array: u32,
    /// GPUs per task (more than one: a worker per GPU in each task)
    #[arg(long)]
    pub gpus_per_task: Option<u32>,
    /// CPUs per task
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Time limit per task (sbatch --time); a worker gets SIGTERM 2 minutes before and checkpoints
    #[arg(long)]
    pub time: Option<String>,
    /// Extra sbatch option for both scripts, e.g. --sbatch-arg=--partition=gpu (repeatable)
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Expected file for the check job (default: the suite's; it must exist)
    #[arg(long)]
    pub expected: Option<PathBuf>,
    /// Override runtime.threads in the workers
    #[arg(long)]
    pub threads: Option<usize>,
    /// Lease timeout of the workers in seconds (see `run --lease-timeout`)
    #[arg(long, value_name = "SECS")]
    pub lease_timeout: Option<f64>,
    /// Call sbatch for both scripts and print the job ids
    #[arg(long)]
    pub submit: bool,
    /// Every array task is one data-parallel worker of N ranks: --ntasks=N and srun
    /// starting them (runs one at a time; with --gpus-per-task 1, a GPU per rank)
    #[arg(long, value_name = "N")]
    pub ranks_per_run: Option<u32>,
    /// Nodes each array task spreads its ranks over (with --ranks-per-run)
    #[arg(long, value_name = "K")]
    pub nodes: Option<u32>,
}

pub fn slurm(args: SlurmArgs) -> Result<Exit> {
    let SlurmArgs {
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
        ranks_per_run,
        nodes,
    } = args;
    // With --ranks-per-run the suite is checked as it will run (batch sizes).
    let s = suite::load(
        &file,
        &Overrides {
            threads,
            device: None,
            world_size: ranks_per_run.map(|n| n as usize),
        },
    )?;
    // The check job's expected file must be good now, not after hours of training.
    let opts = runner::RunOptions {
        expected: expected.clone(),
        ..runner::RunOptions::new(out.clone())
    };
    runner::expected_for(&s, &opts)?;
    let expected = expected.unwrap_or_else(|| s.expected.clone());
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
        ranks_per_run,
        nodes,
        runs: s.runs.len(),
        max_array_size: slurm::max_array_size(),
        wait_for_teachers: s.has_dependencies(),
    };
    let scripts = slurm::write(&o)?;
    println!("{}", scripts.worker.display());
    println!("{}", scripts.check.display());
    if submit {
        let (a, c) = slurm::submit(&scripts)?;
        println!("array job {a} ({array} workers), check job {c} (after the array)");
        println!("watch:  squeue -j {a},{c}");
        println!("logs:   tail -f {}/worker-{a}_*.out", scripts.dir.display());
        println!("result: sacct -j {c} --format=JobID,State,ExitCode  (exit code 0 pass, 1 out of band, 2 input, 3 no verdict: runs unfinished, submit again); {}/check-{c}.out has the table", scripts.dir.display());
    } else {
        println!(
            "submit: a=$(sbatch --parsable {}) && sbatch --dependency=afterany:$a {} $a",
            scripts.worker.display(),
            scripts.check.display()
        );
    }
    Ok(Exit::Pass)
}
