//! The `report` command: tables of one or more results directories, and figures.
use crate::report;
use crate::util::error::InputError;
use crate::util::exit::Exit;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

// The flags of `report` (its help text is the doc comment of `Cmd::Report`).
#[derive(Args)]
pub struct ReportArgs {
    /// Results directories, e.g. results/smoke (several with --layout paper: CIFAR-10, CIFAR-100, ImageNet)
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Output format
    #[arg(long, default_value = "markdown", value_parser = ["markdown", "latex", "csv", "json"])]
    pub format: String,
    /// ablation: rows architecture, columns arm (one directory); paper: the paper's Table 3, rows architecture and method, columns dataset
    #[arg(long, default_value = "ablation", value_parser = ["ablation", "paper"])]
    pub layout: String,
    /// top1, top5, error (100 - top-1, what the paper prints), or the test split's calibration: nll (nats) or ece (%); lower is better for error, nll and ece. With --layout paper a comma-separated list gives a column per dataset and metric (e.g. error,top5,nll,ece)
    #[arg(long, default_value = "top1", value_delimiter = ',', value_parser = ["top1", "top5", "error", "nll", "ece"])]
    pub metric: Vec<String>,
    /// After the last epoch, or at the best epoch (by validation top-1 when the runs have a holdout, else on the test set: the heading says which)
    #[arg(long, default_value = "final", value_parser = ["final", "best"])]
    pub which: String,
    /// Expected file (default: the one recorded when the suite ran, if it exists); once per results directory
    #[arg(long)]
    pub expected: Vec<PathBuf>,
    /// LaTeX: wrap the tabular in a table float
    #[arg(long)]
    pub float: bool,
    /// LaTeX: caption of the float (implies --float; default: the table's title)
    #[arg(long)]
    pub caption: Option<String>,
    /// LaTeX: label of the float (implies --float)
    #[arg(long)]
    pub label: Option<String>,
    /// Also write training curves (SVG and PNG per suite and architecture) into this folder
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

pub fn report(args: ReportArgs) -> Result<Exit> {
    let ReportArgs {
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
    } = args;
    use crate::report::{Layout, MetricKind, Options, Which};
    let mut metrics: Vec<MetricKind> = Vec::new();
    for m in &metric {
        let k = MetricKind::parse(m).expect("clap checked");
        if metrics.contains(&k) {
            return Err(InputError::new(
                std::path::Path::new("--metric"),
                None,
                format!("`{m}` is listed twice"),
            )
            .into());
        }
        metrics.push(k);
    }
    let opts = Options {
        layout: Layout::parse(&layout).expect("clap checked"),
        metrics,
        which: Which::parse(&which).expect("clap checked"),
    };
    if opts.layout == Layout::Ablation && opts.metrics.len() > 1 {
        return Err(InputError::new(
            std::path::Path::new("--metric"),
            None,
            "the ablation layout shows one metric; give several with --layout paper",
        )
        .into());
    }
    if opts.layout == Layout::Ablation && dirs.len() > 1 {
        return Err(InputError::new(
            &dirs[1],
            None,
            "the ablation layout renders one results directory; use --layout paper for several",
        )
        .into());
    }
    if let Some(l) = &label {
        crate::report::check_label(l).map_err(anyhow::Error::msg)?;
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
            for f in crate::report::plot::write_curves(&i.loaded, &folder)? {
                eprintln!("ddgsd-bench: wrote {}", f.display());
            }
        }
    }
    print!("{out}");
    // With an expected file, report exits as check does (the worst of its
    // directories); without one it judged nothing and rendered the table.
    let mut exit = Exit::Pass;
    let mut said = Vec::new();
    for (k, i) in inputs.iter().enumerate() {
        exit = exit.worst(i.verdict.exit());
        if i.verdict.exit() == Exit::NoVerdict {
            let e = expected.get(k).map(PathBuf::as_path);
            let line = crate::schedule::command::unfinished(&i.loaded, e).to_string();
            if !said.contains(&line) {
                eprintln!("{line}");
                said.push(line);
            }
        }
    }
    Ok(exit)
}
