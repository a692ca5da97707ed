//! The `eval` command: top-1, top-5, NLL and ECE of a run's weights (its
//! final model, or its last checkpoint) or of any model file, on the test
//! split (and on a run's holdout), as a markdown table or JSON.
use crate::data::{self, holdout, Dataset};
use crate::model::{self, ArchSpec};
use crate::platform::{self, runtime::RuntimeConfig};
use crate::suite::config::DEFAULT_ECE_BINS;
use crate::train::eval_model::{self, Setup};
use crate::train::evaluate::{EvalMetrics, Evaluation};
use crate::train::exec::Exec;
use crate::train::record::EpochLog;
use crate::util::error::InputError;
use crate::util::exit::Exit;
use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};

// The flags of `eval` (its help text is the doc comment of `Cmd::Eval`).
#[derive(Args)]
pub struct EvalArgs {
    /// A run directory (<out>/<suite>/<run id>: its config names the architecture and the dataset), or a model file (.safetensors, this project's or torchvision's state-dict layout) with --arch and --data
    pub target: PathBuf,
    /// Model file only: the architecture (`resnet20`, `resnet8w8` or `resnet8 --width 8`, `imagenet_resnet18`, ...; see `models`)
    #[arg(long)]
    pub arch: Option<String>,
    /// Model file only: the first-stage width of a CIFAR ResNet
    #[arg(long)]
    pub width: Option<i64>,
    /// Model file only: the dataset (a CIFAR archive or folder, an ImageNet folder or pack)
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model file only: cifar10, cifar100 or imagenet (default: detected)
    #[arg(long, value_parser = ["cifar10", "cifar100", "imagenet"])]
    pub dataset: Option<String>,
    /// Model file only: the network's class count (default: the dataset's)
    #[arg(long)]
    pub classes: Option<i64>,
    /// Device: auto, cpu, cuda, cuda:N (default: the run's, `auto` for a model file)
    #[arg(long)]
    pub device: Option<String>,
    /// Evaluation batch size (default: the run's eval_batch_size, 500 for a model file)
    #[arg(long)]
    pub batch: Option<usize>,
    /// Threads (default: the run's; a run's numbers are reproduced only at its thread count)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Equal-width bins of the ECE (default: the run's `ece_bins`, 15 for a model file)
    #[arg(long)]
    pub ece_bins: Option<usize>,
    /// Print JSON (the metrics, the reliability bins, and the comparison with the run's history)
    #[arg(long)]
    pub json: bool,
}

/// What is evaluated, resolved from the arguments.
struct Job {
    name: String,
    what: String,
    file: PathBuf,
    arch: ArchSpec,
    classes: Option<i64>,
    rt: RuntimeConfig,
    batch: usize,
    bins: usize,
    data: std::sync::Arc<dyn Dataset>,
    holdout: Option<Vec<usize>>,
    logged: Option<EpochLog>,
}

fn parse_arch(name: &str, width: Option<i64>) -> Result<ArchSpec> {
    let direct = ArchSpec {
        name: name.to_string(),
        width,
    };
    if model::lookup(name).is_ok() {
        return Ok(direct);
    }
    // `resnet8w8`: a run id's architecture part.
    if let Some((base, w)) = name.rsplit_once('w') {
        if let (Ok(w), true) = (w.parse::<i64>(), model::lookup(base).is_ok()) {
            if width.is_none() {
                return Ok(ArchSpec {
                    name: base.into(),
                    width: Some(w),
                });
            }
        }
    }
    model::lookup(name)?;
    Ok(direct)
}

fn run_job(dir: &Path, a: &EvalArgs) -> Result<Job> {
    for (flag, set) in [
        ("--arch", a.arch.is_some()),
        ("--width", a.width.is_some()),
        ("--data", a.data.is_some()),
        ("--dataset", a.dataset.is_some()),
        ("--classes", a.classes.is_some()),
    ] {
        if set {
            bail!(InputError::new(
                dir,
                None,
                format!("{flag} is for a model file; a run directory's config names its architecture and dataset")
            ));
        }
    }
    let w = eval_model::run_weights(dir)?;
    let cfg = &w.config;
    let data = data::open(&cfg.dataset)?;
    let trained_on = w
        .record
        .as_ref()
        .map(|r| r.dataset.fingerprint.clone())
        .or_else(|| {
            crate::train::run_state::read_state(&dir.join(crate::train::CHECKPOINT_DIR))
                .ok()
                .flatten()
                .map(|s| s.dataset_fingerprint)
        });
    if let Some(fp) = trained_on {
        if fp != data.info().fingerprint {
            bail!(InputError::new(
                dir,
                Some("dataset"),
                format!(
                    "the run was trained on dataset {fp}, the data at {} is {}",
                    cfg.dataset.describe(),
                    data.info().fingerprint
                )
            ));
        }
    }
    let holdout = match &cfg.holdout {
        Some(h) => Some(holdout::split(data.as_ref(), h)?.record.ids),
        None => None,
    };
    let mut rt = cfg.runtime.clone();
    if let Some(d) = &a.device {
        rt.device = d.clone();
    }
    if let Some(t) = a.threads {
        rt.threads = t;
    }
    Ok(Job {
        name: cfg.run_id.clone(),
        what: w.what,
        file: w.file,
        arch: cfg.arch.clone(),
        classes: None,
        rt,
        batch: a.batch.unwrap_or(cfg.train.eval_batch_size),
        bins: a.ece_bins.unwrap_or(cfg.train.ece_bins),
        data,
        holdout,
        logged: w.logged,
    })
}

fn file_job(file: &Path, a: &EvalArgs) -> Result<Job> {
    let Some(arch) = &a.arch else {
        bail!(InputError::new(
            file,
            None,
            "a model file needs --arch (and --data); a run directory needs neither"
        ));
    };
    let Some(path) = &a.data else {
        bail!(InputError::new(
            file,
            None,
            "a model file needs --data (a CIFAR archive or folder, an ImageNet folder or pack)"
        ));
    };
    let arch = parse_arch(arch, a.width)?;
    let info = model::lookup(&arch.name)?;
    if let Err(e) = model::check_width(&arch, &info) {
        bail!(InputError::new(file, Some("--width"), e));
    }
    let data: std::sync::Arc<dyn Dataset> =
        std::sync::Arc::from(super::data::open_any(path, a.dataset.as_deref())?);
    let want = if data.info().name == "imagenet" {
        "imagenet"
    } else {
        "cifar"
    };
    if info.input != want {
        bail!(InputError::new(
            path,
            None,
            format!(
                "`{}` is an architecture for {} inputs, the dataset is {}",
                arch.name,
                info.input,
                data.info().name
            )
        ));
    }
    let rt = RuntimeConfig::plain(
        a.device.as_deref().unwrap_or("auto"),
        a.threads.unwrap_or(platform::runtime::DEFAULT_THREADS),
    );
    Ok(Job {
        name: file.display().to_string(),
        what: "model file".into(),
        file: file.to_path_buf(),
        arch,
        classes: a.classes,
        rt,
        batch: a.batch.unwrap_or(500),
        bins: a.ece_bins.unwrap_or(DEFAULT_ECE_BINS),
        data,
        holdout: None,
        logged: None,
    })
}

/// Whether `m` equals the logged values (NLL and ECE where logged).
fn same_as(m: &EvalMetrics, log: &EpochLog, bins_as_logged: bool) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut cmp = |name: &str, got: f64, logged: Option<f64>| {
        if let Some(l) = logged {
            if got != l {
                diffs.push(format!("{name} {got} here, {l} in the history"));
            }
        }
    };
    cmp("top-1", m.top1, Some(log.test_top1));
    cmp("top-5", m.top5, Some(log.test_top5));
    cmp("NLL", m.nll, log.test_nll);
    if bins_as_logged {
        cmp("ECE", m.ece, log.test_ece);
    }
    diffs
}

pub fn eval(a: EvalArgs) -> Result<Exit> {
    if let Some(b) = a.batch {
        if b == 0 {
            bail!(InputError::new(
                &a.target,
                Some("--batch"),
                "expected a positive batch size"
            ));
        }
    }
    if let Some(b) = a.ece_bins {
        if !(1..=1000).contains(&b) {
            bail!(InputError::new(
                &a.target,
                Some("--ece-bins"),
                format!("expected 1..=1000, got {b}")
            ));
        }
    }
    if !a.target.exists() {
        bail!(InputError::new(&a.target, None, "not found"));
    }
    let job = if a.target.is_dir() {
        run_job(&a.target, &a)?
    } else {
        file_job(&a.target, &a)?
    };
    let rt = &job.rt;
    platform::init(rt)?;
    let device = platform::select_device(rt)?;
    let setup = Setup {
        arch: &job.arch,
        classes: job.classes.unwrap_or(job.data.info().classes as i64),
        exec: Exec::new(device, rt.precision, rt.memory_format),
        batch: job.batch,
        bins: job.bins,
    };
    let (test, val) =
        eval_model::evaluate_file(&job.file, &setup, job.data.as_ref(), job.holdout.as_deref())?;
    let bins_as_logged = a.ece_bins.is_none();
    let diffs = job
        .logged
        .as_ref()
        .map(|l| same_as(&test.metrics, l, bins_as_logged));
    let info = job.data.info();
    let threads = crate::platform::shim::thread_counts().0;
    if a.json {
        let v = json!({
            "target": job.name,
            "weights": job.what,
            "model_file": job.file.display().to_string(),
            "arch": job.arch.id(),
            "classes": setup.classes,
            "dataset": { "name": info.name, "fingerprint": info.fingerprint },
            "device": format!("{device:?}").to_lowercase(),
            "threads": threads,
            "precision": rt.precision,
            "batch": job.batch,
            "ece_bins": job.bins,
            "test": test,
            "validation": val,
            "history_epoch": job.logged.as_ref().map(|l| l.epoch),
            "same_as_history": diffs.as_ref().map(Vec::is_empty),
            "differences": diffs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Exit::Pass);
    }
    print!(
        "{}",
        table(
            &job,
            &setup,
            device,
            threads,
            &test,
            val.as_ref(),
            diffs.as_deref()
        )
    );
    Ok(Exit::Pass)
}

fn table(
    job: &Job,
    s: &Setup,
    device: tch::Device,
    threads: i32,
    test: &Evaluation,
    val: Option<&Evaluation>,
    diffs: Option<&[String]>,
) -> String {
    let info = job.data.info();
    let mut out = format!(
        "### eval: {} ({}), {}, {} ({}); device {}, {} threads, {}, batch {}, ECE over {} equal-width bins\n\n",
        job.name,
        job.what,
        job.arch.id(),
        info.name,
        &info.fingerprint[..16.min(info.fingerprint.len())],
        format!("{device:?}").to_lowercase(),
        threads,
        serde_json::to_value(job.rt.precision).unwrap().as_str().unwrap_or("?"),
        s.batch,
        s.bins
    );
    out.push_str("| split | samples | top-1 (%) | top-5 (%) | NLL | ECE (%) |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    let row = |name: &str, m: &EvalMetrics| {
        format!(
            "| {name} | {} | {:.2} | {:.2} | {:.4} | {:.2} |\n",
            m.n, m.top1, m.top5, m.nll, m.ece
        )
    };
    out.push_str(&row("test", &test.metrics));
    if let Some(v) = val {
        out.push_str(&row("validation (holdout)", &v.metrics));
    }
    if let (Some(d), Some(log)) = (diffs, &job.logged) {
        out.push('\n');
        if d.is_empty() {
            out.push_str(&format!(
                "Same numbers as the run's history at epoch {} (the evaluation of these weights during training).\n",
                log.epoch
            ));
        } else {
            out.push_str(&format!(
                "Differs from the run's history at epoch {}: {} (another device, thread count or batch size?).\n",
                log.epoch,
                d.join("; ")
            ));
        }
    }
    out
}
