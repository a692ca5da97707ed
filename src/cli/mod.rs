//! The `ddgsd-bench` command line: a thin layer over the library. Each
//! file holds the flags of its commands (clap `Args`) and turns them into
//! library calls and an exit code: 0 every band and claim holds, 1
//! something is out of band, 2 the input or the environment is wrong (one
//! line on stderr says what).
//!
//! Uses: schedule, bench, report, gate, results, train, suite, model, data, platform, util.
mod bench;
pub mod data;
mod eval;
mod gate;
mod info;
mod report;
mod run;
mod slurm;

use anyhow::Result;
use clap::{Parser, Subcommand};
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
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Train every run of a suite (skipping finished runs, resuming unfinished ones), check and print the table
    Run(run::RunArgs),
    /// Write Slurm batch scripts for a suite (a job array of workers and a check job after it), and submit them with --submit
    Slurm(slurm::SlurmArgs),
    /// Re-check a results directory against its expected file, without training
    Check(gate::CheckArgs),
    /// Render the table of one results directory (ablation layout) or of several (paper layout), and training-curve figures
    Report(report::ReportArgs),
    /// Compare two results directories of one suite (another platform, another commit): Δ per run and metric, checkpoint equality, a verdict under the expected file's tolerances (markdown)
    Compare(gate::CompareArgs),
    /// Write or update the bands of an expected file from reference runs (centre = mean over seeds, tolerance = max(floor, k x seed sd)); published bands, comments, claims and pins are kept
    Calibrate(gate::CalibrateArgs),
    /// Evaluate a run's weights (final model, or last checkpoint) or any model file: top-1, top-5, NLL and ECE on the test split (and a run's holdout), as a table or --json
    Eval(eval::EvalArgs),
    /// List the runs a suite would do, with their resolved settings
    Plan(info::PlanArgs),
    /// Write the checkpoint hashes of a finished suite into its expected file, under this platform
    Pin(gate::PinArgs),
    /// Print the environment a run would record (versions, device, threads, determinism flags, platform) as JSON
    Env(info::EnvArgs),
    /// Datasets: fetch CIFAR, verify, fingerprint, pack ImageNet, benchmark the loader
    Data {
        #[command(subcommand)]
        cmd: data::DataCmd,
    },
    /// Recompute checkpoint_sha256 from a model .safetensors file
    Hash(info::HashArgs),
    /// List every architecture with its input kind and parameter count
    Models(info::ModelsArgs),
    /// Time forward + backward + SGD of one DDGSD step (two views concatenated) per architecture
    Bench(bench::BenchArgs),
}

/// The whole program: parse the command line, run the command, exit.
pub fn main() -> ExitCode {
    // Before libtorch allocates: keep freed CPU tensor memory (see heap.rs).
    crate::platform::heap::tune();
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

pub fn dispatch(cli: Cli) -> Result<u8> {
    match cli.cmd {
        Cmd::Run(a) => run::run(a),
        Cmd::Slurm(a) => slurm::slurm(a),
        Cmd::Check(a) => gate::check(a),
        Cmd::Report(a) => report::report(a),
        Cmd::Compare(a) => gate::compare(a),
        Cmd::Calibrate(a) => gate::calibrate(a),
        Cmd::Eval(a) => eval::eval(a),
        Cmd::Plan(a) => info::plan(a),
        Cmd::Pin(a) => gate::pin(a),
        Cmd::Env(a) => info::env(a),
        Cmd::Data { cmd } => data::run(cmd),
        Cmd::Hash(a) => info::hash(a),
        Cmd::Models(a) => info::models(a),
        Cmd::Bench(a) => bench::bench(a),
    }
}
