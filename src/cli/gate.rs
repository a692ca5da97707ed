//! The commands that judge results or move the gate: `check`, `compare`, `calibrate`, `pin`.
use crate::gate::expected::Expected;
use crate::results::{self, Loaded};
use crate::schedule::command::unfinished;
use crate::schedule::runner;
use crate::util::error::InputError;
use crate::util::exit::Exit;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

// The flags of `check` (its help text is the doc comment of `Cmd::Check`).
#[derive(Args)]
pub struct CheckArgs {
    /// Results directory of one suite, e.g. results/smoke
    pub results: PathBuf,
    /// Expected file (default: the one recorded when the suite ran)
    #[arg(long)]
    pub expected: Option<PathBuf>,
}

/// The expected file `check` and `compare` judge with: given, or recorded.
fn expected_of(loaded: &Loaded, explicit: Option<&std::path::Path>) -> Result<Expected> {
    let e = Expected::of_dir(loaded, explicit, Some("give one with --expected"))?;
    Ok(e.expect("required"))
}

pub fn check(args: CheckArgs) -> Result<Exit> {
    let CheckArgs {
        results: dir,
        expected,
    } = args;
    let loaded = results::load(&dir)?;
    let exp = expected_of(&loaded, expected.as_deref())?;
    let (v, md) = runner::judge_and_write(&loaded, &exp)?;
    print!("{md}");
    if v.exit() == Exit::NoVerdict {
        eprintln!("{}", unfinished(&loaded, expected.as_deref()));
    }
    Ok(v.exit())
}

// The flags of `compare` (its help text is the doc comment of `Cmd::Compare`).
#[derive(Args)]
pub struct CompareArgs {
    /// Results directory A (the reference), e.g. results/smoke
    pub a: PathBuf,
    /// Results directory B, of the same suite
    pub b: PathBuf,
    /// Expected file whose band tolerances judge the Δ (default: the one recorded in A)
    #[arg(long)]
    pub expected: Option<PathBuf>,
}

pub fn compare(args: CompareArgs) -> Result<Exit> {
    let CompareArgs { a, b, expected } = args;
    let la = results::load(&a)?;
    let lb = results::load(&b)?;
    let exp = expected_of(&la, expected.as_deref())?;
    let c = crate::gate::compare::compare(&la, &lb, &exp)?;
    print!("{}", crate::gate::compare::markdown(&c));
    for l in [&la, &lb] {
        if c.exit() == Exit::NoVerdict && !l.unfinished().is_empty() {
            eprintln!("{}", unfinished(l, expected.as_deref()));
        }
    }
    Ok(c.exit())
}

// The flags of `calibrate` (its help text is the doc comment of `Cmd::Calibrate`).
#[derive(Args)]
pub struct CalibrateArgs {
    /// Results directory of the reference runs, e.g. results/smoke
    pub results: PathBuf,
    /// Expected file to write (default: the one recorded when the suite ran; created when missing)
    #[arg(long)]
    pub expected: Option<PathBuf>,
    /// Metric of the bands
    #[arg(long, default_value = "top1_final", value_parser = ["top1_final", "top1_best"])]
    pub metric: String,
    /// Tolerance = max(floor, k x the seeds' sample sd)
    #[arg(long, default_value_t = 2.0)]
    pub k: f64,
    /// Smallest tolerance, in accuracy points
    #[arg(long, default_value_t = 0.5)]
    pub floor: f64,
}

pub fn calibrate(args: CalibrateArgs) -> Result<Exit> {
    let CalibrateArgs {
        results: dir,
        expected,
        metric,
        k,
        floor,
    } = args;
    use crate::gate::calibrate::{calibrate, today, Rule};
    let loaded = results::load(&dir)?;
    if loaded.records.is_empty() {
        return Err(InputError::new(&dir, None, "no finished runs to calibrate from").into());
    }
    let path = expected.unwrap_or_else(|| loaded.meta.expected_path().0);
    let rule = Rule {
        metric: if metric == "top1_best" {
            crate::gate::expected::Metric::Top1Best
        } else {
            crate::gate::expected::Metric::Top1Final
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
    Ok(Exit::Pass)
}

// The flags of `pin` (its help text is the doc comment of `Cmd::Pin`).
#[derive(Args)]
pub struct PinArgs {
    /// Results directory of one suite, e.g. results/smoke
    pub results: PathBuf,
    /// Expected file (default: the one recorded when the suite ran)
    #[arg(long)]
    pub expected: Option<PathBuf>,
}

pub fn pin(args: PinArgs) -> Result<Exit> {
    let PinArgs {
        results: dir,
        expected,
    } = args;
    let loaded = results::load(&dir)?;
    let path = expected.unwrap_or_else(|| loaded.meta.expected_path().0);
    if loaded.records.is_empty() {
        return Err(InputError::new(&dir, None, "no finished runs to pin").into());
    }
    let n = crate::gate::pin::write_pins(&path, &loaded.records)?;
    let plats: std::collections::BTreeSet<&str> =
        loaded.records.iter().map(|r| r.platform.as_str()).collect();
    eprintln!(
        "ddgsd-bench: {n} pins written to {} for {} runs on platform {}",
        path.display(),
        loaded.records.len(),
        plats.into_iter().collect::<Vec<_>>().join(", ")
    );
    Ok(Exit::Pass)
}
