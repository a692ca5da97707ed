//! The `ddgsd-bench` command line: a thin layer over the library. Each
//! file holds the flags of its commands (clap `Args`) and turns them into
//! library calls and an [`Exit`] (util/exit.rs defines the codes; an error
//! is one line on stderr and exit 2).
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

use crate::util::exit::Exit;
use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;
use std::sync::Mutex;

#[derive(Parser)]
#[command(
    name = "ddgsd-bench",
    version,
    about = "Reproducibility harness for Data-Distortion Guided Self-Distillation (Xu & Liu, AAAI 2019)",
    long_about = "Trains every (architecture, arm, seed) run of a suite deterministically, checks the \
accuracies against the tolerance bands of its expected file and renders comparison tables."
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
    /// Judge a results directory without training: exactly the plan its suite.json records, against its recorded expected file (exit 3 while planned runs lack a record)
    Check(gate::CheckArgs),
    /// Render the table of one results directory (ablation layout) or of several (paper layout), and training-curve figures; with an expected file, exit as check does
    Report(report::ReportArgs),
    /// Compare two results directories of one suite (another platform, another commit): Δ per run and metric, checkpoint equality, a verdict under the expected file's tolerances (markdown; exit 3 while a planned run is unfinished on a side)
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
    /// Recompute checkpoint_sha256 from a model .safetensors file (with the heads.safetensors beside a BYOT run's model.safetensors)
    Hash(info::HashArgs),
    /// List every architecture with its input kind and parameter count
    Models(info::ModelsArgs),
    /// Time forward + backward + SGD of one training step of a built-in arm (default ddgsd: two views concatenated) per architecture, beside the baseline's; or the whole loop (--loop, --pytorch)
    Bench(bench::BenchArgs),
}

/// The exit codes, as `--help` prints them after the commands.
fn exit_codes_help() -> String {
    let mut s = String::from(
        "Exit codes (run, check, compare, report with an expected file, the Slurm check job):\n",
    );
    for e in Exit::ALL {
        s.push_str(&format!("  {:>3}  {}\n", e.code(), e.meaning()));
    }
    s
}

/// Every option that takes a value takes a negative number as its value
/// (`--lease-timeout -1` is then refused by its own check, not read as an
/// unknown flag `-1`).
fn negative_numbers(c: clap::Command) -> clap::Command {
    c.mut_args(|a| {
        if a.get_action().takes_values() {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    })
    .mut_subcommands(negative_numbers)
}

/// The command line as clap sees it, with the exit-code table in `--help`.
pub fn command() -> clap::Command {
    let mut c = negative_numbers(Cli::command()).after_long_help(exit_codes_help());
    for sub in ["run", "check", "compare", "report"] {
        c = c.mut_subcommand(sub, |s| s.after_long_help(exit_codes_help()));
    }
    c
}

/// Parses the command line; a bad value or flag is one line on stderr and
/// exit 2 (clap's own message spans several lines); `--help` and
/// `--version` print and exit 0.
fn parse() -> Result<Cli, ExitCode> {
    let err = match command().try_get_matches() {
        Ok(m) => match Cli::from_arg_matches(&m) {
            Ok(c) => return Ok(c),
            Err(e) => e,
        },
        Err(e) => e,
    };
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        let code = if err.use_stderr() {
            Exit::Input
        } else {
            Exit::Pass
        };
        return Err(ExitCode::from(code.code()));
    }
    eprintln!(
        "ddgsd-bench: error: {}",
        clap_line(&err.render().to_string())
    );
    Err(ExitCode::from(Exit::Input.code()))
}

/// clap's message on one line: its lines up to `Usage:`, joined.
fn clap_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" ").trim_start_matches("error: ").to_string()
}

/// Where the last panic happened (set by the panic hook).
static PANIC_AT: Mutex<Option<String>> = Mutex::new(None);

/// A panic as one line: libtorch's errors (raised inside tch) say
/// `libtorch:`; any other panic is a bug of this tool and says where.
fn panic_line(payload: &(dyn std::any::Any + Send)) -> String {
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    let first = msg
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    let at = PANIC_AT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    let in_torch = at.contains("/tch-") || at.contains("/torch-sys-") || msg.contains("Torch(");
    if in_torch {
        format!("libtorch: {first}")
    } else {
        format!("internal error at {at} (a bug of ddgsd-bench; please report it): {first}")
    }
}

/// The whole program: parse the command line, run the command, exit.
pub fn main() -> ExitCode {
    // Before libtorch allocates: keep freed CPU tensor memory (see heap.rs).
    crate::platform::heap::tune();
    let cli = match parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    // libtorch errors surface as panics inside tch (e.g. an op without a
    // deterministic implementation): report them as one line, exit 2.
    std::panic::set_hook(Box::new(|info| {
        if let Some(l) = info.location() {
            *PANIC_AT.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("{}:{}", l.file(), l.line()));
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli)));
    let result = result.unwrap_or_else(|p| Err(anyhow::anyhow!(panic_line(p.as_ref()))));
    match result {
        Ok(code) => ExitCode::from(code.code()),
        Err(e) => {
            eprintln!("ddgsd-bench: error: {}", crate::util::error::one_line(&e));
            ExitCode::from(Exit::Input.code())
        }
    }
}

pub fn dispatch(cli: Cli) -> Result<Exit> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_exit_code() {
        let help = command().render_long_help().to_string();
        for e in Exit::ALL {
            assert!(
                help.contains(&format!("{:>3}  {}", e.code(), e.meaning())),
                "{help}"
            );
        }
    }

    #[test]
    fn panics_say_whether_libtorch_raised_them() {
        let set = |at: &str| *PANIC_AT.lock().unwrap() = Some(at.to_string());
        set("/root/.cargo/registry/src/x/tch-0.24.0/src/wrappers/tensor_generated.rs:77");
        let torch: Box<dyn std::any::Any + Send> = Box::new(
            "called `Result::unwrap()` on an `Err` value: Torch(\"no det impl\")\nmore".to_string(),
        );
        assert_eq!(
            panic_line(torch.as_ref()),
            "libtorch: called `Result::unwrap()` on an `Err` value: Torch(\"no det impl\")"
        );
        set("src/report/markdown.rs:12");
        let ours: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        let l = panic_line(ours.as_ref());
        assert!(
            l.starts_with("internal error at src/report/markdown.rs:12 (a bug of ddgsd-bench")
                && !l.contains("libtorch"),
            "{l}"
        );
    }

    #[test]
    fn clap_errors_become_one_line() {
        let e = command()
            .try_get_matches_from(["ddgsd-bench", "report", "r", "--format", "xml"])
            .unwrap_err();
        let l = clap_line(&e.render().to_string());
        assert!(
            !l.contains('\n') && l.starts_with("invalid value 'xml'"),
            "{l}"
        );
        assert!(l.contains("markdown"), "{l}");
        let e = command()
            .try_get_matches_from(["ddgsd-bench", "run", "s.toml", "--lease-timeout", "-1"])
            .unwrap();
        let run = e.subcommand_matches("run").unwrap();
        assert_eq!(run.get_one::<f64>("lease_timeout"), Some(&-1.0));
    }
}
