//! `bench --loop --ranks LIST`: the training loop of one data-parallel run
//! at each rank count, as `run --ranks N` trains it (this binary, a real
//! gloo or NCCL group), and the scaling efficiency.
//!
//! The workload is `bench --loop`'s (the `ddgsd` arm, synthetic 32x32 data,
//! 100 classes, `--batch` images x 2 views per global step, two epochs of
//! `--steps` steps); the figure is the second epoch (its evaluation of 100
//! test images included), from the run's record. On the CPU every row uses
//! the same cores: `--threads` is split over the ranks (`--ranks 2` at 1
//! thread each against `--ranks 1` at 2 threads), so the efficiency,
//! images/s over the 1-rank row's, shows the communication overhead (1.00 =
//! none). On CUDA each rank has its own GPU and the efficiency is images/s
//! over N times the 1-rank row's.
use crate::bench::train_loop::{suite_text, Figure, LoopOptions};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// One row: `ranks` ranks of `threads` threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub ranks: usize,
    pub threads: usize,
    pub fig: Figure,
}

/// The suite of the rank count `ranks` (threads per rank `threads`).
fn suite_for(o: &LoopOptions, ranks: usize, threads: usize) -> String {
    let per = LoopOptions {
        threads,
        ..o.clone()
    };
    suite_text(&per) + &format!("world_size = {ranks}\n")
}

/// Trains the workload at `ranks` ranks in `dir` and reads its second epoch.
fn measure(o: &LoopOptions, ranks: usize, threads: usize, dir: &Path) -> Result<Figure> {
    let file = dir.join("bench_ranks.toml");
    std::fs::write(&file, suite_for(o, ranks, threads))
        .with_context(|| format!("writing {}", file.display()))?;
    let exe = std::env::current_exe().context("bench --ranks: cannot find this binary")?;
    let out = dir.join("out");
    let o2 = std::process::Command::new(&exe)
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .arg("--no-check")
        .stdout(std::process::Stdio::null())
        .output()
        .with_context(|| format!("bench --ranks: cannot start {}", exe.display()))?;
    if !o2.status.success() {
        let err = String::from_utf8_lossy(&o2.stderr);
        bail!(
            "bench --ranks: the {ranks}-rank run failed: {}",
            err.lines()
                .rfind(|l| l.contains("error"))
                .unwrap_or("(no error line)")
        );
    }
    let run = std::fs::read_dir(out.join("bench_loop"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("record.json"))
        .find(|p| p.exists())
        .context("bench --ranks: the run wrote no record")?;
    let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&run)?)?;
    let secs = rec["history"][1]["seconds"]
        .as_f64()
        .context("bench --ranks: the record has no second epoch")?;
    Ok(Figure::new(
        format!("{ranks} ranks"),
        o.batch as f64,
        1000.0 * secs / o.steps as f64,
    ))
}

/// The scaling efficiency of `row` against the 1-rank row `base`.
pub fn efficiency(row: &Row, base: &Row, gpus: bool) -> f64 {
    let ideal = if gpus {
        base.fig.images_per_second * row.ranks as f64 / base.ranks as f64
    } else {
        base.fig.images_per_second
    };
    row.fig.images_per_second / ideal
}

/// The markdown table.
pub fn table(title: &str, rows: &[Row], gpus: bool) -> String {
    let mut s = format!(
        "{title}\n\n| ranks | threads per rank | source images/s | ms/step | ms/step range | scaling efficiency |\n|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1}-{:.1} | {:.2} |\n",
            r.ranks,
            r.threads,
            r.fig.images_per_second,
            r.fig.ms_per_step,
            r.fig.range_ms.0,
            r.fig.range_ms.1,
            efficiency(r, &rows[0], gpus)
        ));
    }
    s.push_str(if gpus {
        "\nScaling efficiency: images/s over (ranks x the first row's images/s); one GPU per rank.\n"
    } else {
        "\nScaling efficiency: images/s over the first row's, on the same cores (the threads are split over the ranks): below 1.00 is the cost of the all-reduce and the rank coordination.\n"
    });
    s
}

/// Runs every rank count `--rounds` times, interleaved (ascending, then
/// descending), and returns the table of the medians.
pub fn run(o: &LoopOptions, ranks: &[usize]) -> Result<String> {
    if ranks.is_empty() || ranks.contains(&0) {
        bail!("bench --ranks: expected rank counts of at least 1, e.g. --ranks 1,2");
    }
    let gpus = o.device != "cpu" && tch::Cuda::is_available();
    let mut plan = Vec::new();
    for &n in ranks {
        let threads = if gpus { o.threads } else { o.threads / n };
        if !gpus && (threads == 0 || o.threads % n != 0) {
            bail!(
                "bench --ranks: {n} ranks do not split --threads {} evenly (the CPU rows share the same cores)",
                o.threads
            );
        }
        if o.batch as usize % n != 0 {
            bail!(
                "bench --ranks: --batch {} is not divisible by {n} ranks",
                o.batch
            );
        }
        plan.push((n, threads));
    }
    let tmp = tempfile::tempdir().context("bench --ranks: cannot make a temporary directory")?;
    let mut samples: Vec<Vec<Figure>> = vec![vec![]; plan.len()];
    for r in 1..=o.rounds {
        let order: Vec<usize> = if r % 2 == 1 {
            (0..plan.len()).collect()
        } else {
            (0..plan.len()).rev().collect()
        };
        for k in order {
            let (n, t) = plan[k];
            eprintln!("bench: round {r}/{}: {n} ranks x {t} threads", o.rounds);
            let dir = tmp.path().join(format!("r{r}-n{n}"));
            std::fs::create_dir_all(&dir)?;
            samples[k].push(measure(o, n, t, &dir)?);
        }
    }
    let rows: Vec<Row> = plan
        .iter()
        .zip(&samples)
        .map(|(&(ranks, threads), s)| Row {
            ranks,
            threads,
            fig: Figure::median(s),
        })
        .collect();
    let title = format!(
        "Data-parallel loop: DDGSD arm, {}, 100 classes, synthetic 32x32, global batch {} images x 2 views, second epoch of {} steps (its 100-image evaluation included), median of {} interleaved rounds, device {}, {} threads{}",
        o.arch,
        o.batch,
        o.steps,
        o.rounds,
        o.device,
        o.threads,
        if gpus { " per rank" } else { " in all" }
    );
    Ok(table(&title, &rows, gpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ranks: usize, ips: f64) -> Row {
        Row {
            ranks,
            threads: 1,
            fig: Figure::new(format!("{ranks} ranks"), 128.0, 128.0 / ips * 1000.0),
        }
    }

    #[test]
    fn efficiency_on_the_same_cores_and_per_gpu() {
        let (a, b) = (row(1, 200.0), row(2, 180.0));
        assert!((efficiency(&b, &a, false) - 0.9).abs() < 1e-9);
        assert!((efficiency(&b, &a, true) - 0.45).abs() < 1e-9);
        let t = table("t", &[a, b], false);
        assert!(t.contains("| 2 | 1 | 180.0 |"), "{t}");
        assert!(t.contains("| 0.90 |"), "{t}");
    }
}
