//! `run --workers LIST`: one worker process per entry (`cpu`, `cuda:N`; an
//! entry may repeat; with `--ranks N` every N consecutive entries are one
//! data-parallel worker) on the same results directory. The workers are this
//! same binary; they share the runs through leases (see `lease`). Each
//! sees only its GPU (`CUDA_VISIBLE_DEVICES`), so its config and results
//! are those of a single worker. Every entry must name a device this
//! process can see (a typo would otherwise train on the CPU and pass);
//! `supervise` starts, watches and replaces the processes; when every run
//! is finished the suite is checked.
use crate::schedule::command::run_args;
use crate::schedule::runner::{self, RunOptions, SuiteOutcome};
use crate::schedule::supervise::{self, Ended};
use crate::suite::ResolvedSuite;
use crate::util::exit::NoVerdict;
use anyhow::{bail, Result};

/// One entry of `--workers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Cpu,
    Cuda(usize),
    /// The devices of one data-parallel worker's ranks (`--ranks N`
    /// groups N consecutive entries).
    Ranks(Vec<Entry>),
}

impl Entry {
    /// The single devices of this entry (its ranks' for a group).
    pub fn devices(&self) -> Vec<&Entry> {
        match self {
            Entry::Ranks(v) => v.iter().flat_map(|e| e.devices()).collect(),
            e => vec![e],
        }
    }

    /// A worker on GPUs (each of its ranks on one).
    pub fn is_gpu(&self) -> bool {
        self.devices().iter().any(|e| matches!(e, Entry::Cuda(_)))
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Entry::Cpu => write!(f, "cpu"),
            Entry::Cuda(i) => write!(f, "cuda:{i}"),
            Entry::Ranks(v) => {
                let names: Vec<String> = v.iter().map(|e| e.to_string()).collect();
                write!(f, "{}", names.join("+"))
            }
        }
    }
}

/// Parses `cpu,cuda:0,cuda:0`.
pub fn parse_list(s: &str) -> Result<Vec<Entry>> {
    let entries = s
        .split(',')
        .map(|e| match e.trim() {
            "cpu" => Ok(Entry::Cpu),
            e => e
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Entry::Cuda)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--workers `{s}`: entry `{e}`: expected cpu or cuda:N, e.g. cuda:0,cuda:1"
                    )
                }),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(entries)
}

/// The list as `--workers` takes it (a group's devices one by one, as
/// `--ranks` groups them again).
pub fn list_text(entries: &[Entry]) -> String {
    let v: Vec<String> = entries
        .iter()
        .flat_map(|e| e.devices())
        .map(|e| e.to_string())
        .collect();
    v.join(",")
}

/// Every `ranks` consecutive entries as one worker of that many ranks.
pub fn group_ranks(entries: Vec<Entry>, ranks: usize) -> Result<Vec<Entry>> {
    if ranks <= 1 {
        return Ok(entries);
    }
    if entries.len() % ranks != 0 {
        bail!(
            "--workers lists {} devices, not a multiple of --ranks {ranks} (every {ranks} consecutive entries form one data-parallel worker)",
            entries.len()
        );
    }
    Ok(entries
        .chunks(ranks)
        .map(|c| Entry::Ranks(c.to_vec()))
        .collect())
}

/// `CUDA_VISIBLE_DEVICES` for a worker: its GPU among the parent's visible
/// ones (its ranks' GPUs), or none for a CPU worker.
pub fn visible_devices(entry: &Entry, parent: Option<&str>) -> String {
    match entry {
        Entry::Ranks(v) => {
            let ds: Vec<String> = v
                .iter()
                .map(|e| visible_devices(e, parent))
                .filter(|d| !d.is_empty())
                .collect();
            ds.join(",")
        }
        Entry::Cpu => String::new(),
        Entry::Cuda(i) => match parent.filter(|p| !p.trim().is_empty()) {
            Some(p) => p
                .split(',')
                .nth(*i)
                .map(|d| d.trim().to_string())
                .unwrap_or_else(|| i.to_string()),
            None => i.to_string(),
        },
    }
}

/// Refuses entries the workers could not honour: a GPU this process does
/// not see (`gpus` of them are visible), GPU entries for a suite that
/// trains on the CPU, CPU entries for a suite that asks for CUDA, and a
/// `cuda:K` device other than the only one each worker sees (cuda:0).
pub fn check_entries(entries: &[Entry], device: &str, gpus: usize) -> Result<()> {
    let list = list_text(entries);
    let visible = std::env::var("CUDA_VISIBLE_DEVICES")
        .map(|v| format!("CUDA_VISIBLE_DEVICES={v}"))
        .unwrap_or_else(|_| "CUDA_VISIBLE_DEVICES unset".into());
    for e in entries.iter().flat_map(|e| e.devices()) {
        if let Entry::Cuda(i) = e {
            if *i >= gpus {
                let seen = match gpus {
                    0 => "no CUDA device is visible here".to_string(),
                    n => format!("only cuda:0..cuda:{} are visible here", n - 1),
                };
                bail!("--workers `{list}`: entry {e}: {seen} ({visible}); a worker would train on the CPU instead");
            }
        }
    }
    let flat: Vec<&Entry> = entries.iter().flat_map(|e| e.devices()).collect();
    let gpu_entry = flat.iter().find(|e| matches!(e, Entry::Cuda(_)));
    let cpu_entry = flat.contains(&&Entry::Cpu);
    if let Some(e) = gpu_entry.filter(|_| device == "cpu") {
        bail!("--workers `{list}`: entry {e}, but runtime.device = \"cpu\": set runtime.device to auto or cuda (or use cpu entries)");
    }
    if cpu_entry && device.starts_with("cuda") {
        bail!("--workers `{list}`: a cpu entry, but runtime.device = \"{device}\" needs a GPU: set runtime.device = \"auto\"");
    }
    if device.starts_with("cuda:") && device != "cuda:0" {
        bail!("--workers `{list}`: runtime.device = \"{device}\", but each worker sees only its own GPU, as cuda:0: set runtime.device to auto or cuda");
    }
    Ok(())
}

/// `run --workers`: validates the suite, the entries and the expected
/// file, records the plan, starts the workers, then (when every run of the
/// suite is finished) checks it.
pub fn run_suite(
    suite: &ResolvedSuite,
    opts: &RunOptions,
    entries: &[Entry],
) -> Result<SuiteOutcome> {
    let expected = runner::expected_for(suite, opts)?;
    let device = suite.runs[0].runtime.device.clone();
    let gpus = if entries.iter().any(Entry::is_gpu) {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    };
    check_entries(entries, &device, gpus)?;
    crate::results::check_suite_dir(&opts.out, suite)?;
    // suite.json before the workers start: they keep its expected file.
    let dir = crate::results::prepare(
        &opts.out,
        suite,
        expected.as_ref().map(|e| e.file.as_path()),
        &opts.overrides,
    )?;
    let abs = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    // The workers: this run without --workers and without judging, at the
    // absolute paths (their working directory is ours, but a printed
    // command may be copied anywhere).
    // With runs that depend on runs, a worker with nothing else to claim
    // waits for the teacher another worker trains (and takes it over if
    // that worker dies) instead of stopping.
    let worker = RunOptions {
        out: abs(&opts.out),
        expected: None,
        check: false,
        workers: None,
        wait: opts.wait || suite.has_dependencies(),
        ..opts.clone()
    };
    let args = run_args(&abs(&suite.file), &worker);
    let resume = crate::schedule::command::run_command(&suite.file, opts);
    eprintln!(
        "ddgsd-bench: suite `{}`: {} workers ({}) on {}",
        suite.name,
        entries.len(),
        entries
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        dir.display()
    );
    match supervise::run(entries, &args, &dir)? {
        Ended::Interrupted => {
            eprintln!("ddgsd-bench: interrupted; every worker checkpointed. Resume with: {resume}");
            Ok(SuiteOutcome::Interrupted)
        }
        Ended::Done { deaths } => {
            let outcome = runner::conclude(suite, opts, expected)?;
            if deaths.is_empty() {
                return Ok(outcome);
            }
            let what: Vec<String> = deaths.iter().map(|d| d.to_string()).collect();
            Ok(match outcome {
                SuiteOutcome::NoVerdict(nv) => SuiteOutcome::NoVerdict(NoVerdict::new(
                    format!("{}; {}", what.join("; "), nv.why),
                    format!(
                        "`{resume}` resumes the runs from their checkpoints; {}",
                        nv.then
                    ),
                )),
                done => {
                    eprintln!(
                        "ddgsd-bench: {} worker death(s) during the suite ({}); every run was finished anyway, from its checkpoint, so the result stands",
                        deaths.len(),
                        what.join("; ")
                    );
                    done
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(
            parse_list("cuda:0,cuda:0,cpu").unwrap(),
            vec![Entry::Cuda(0), Entry::Cuda(0), Entry::Cpu]
        );
        for bad in ["gpu", "cuda", "cuda:x", "", "cpu,,cpu"] {
            assert!(parse_list(bad).is_err(), "{bad}");
        }
        assert_eq!(list_text(&parse_list("cpu, cuda:1").unwrap()), "cpu,cuda:1");
    }

    #[test]
    fn visible_devices_map_through_the_parents() {
        assert_eq!(visible_devices(&Entry::Cpu, Some("0,1")), "");
        assert_eq!(visible_devices(&Entry::Cuda(1), None), "1");
        assert_eq!(visible_devices(&Entry::Cuda(1), Some("4,6")), "6");
        assert_eq!(visible_devices(&Entry::Cuda(0), Some("")), "0");
        let g = group_ranks(parse_list("cuda:0,cuda:1,cuda:2,cuda:3").unwrap(), 2).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].to_string(), "cuda:2+cuda:3");
        assert_eq!(list_text(&g), "cuda:0,cuda:1,cuda:2,cuda:3");
        assert_eq!(visible_devices(&g[1], Some("4,5,6,7")), "6,7");
        assert_eq!(
            visible_devices(
                &group_ranks(parse_list("cpu,cpu").unwrap(), 2).unwrap()[0],
                None
            ),
            ""
        );
        assert!(group_ranks(parse_list("cuda:0,cuda:1,cuda:2").unwrap(), 2).is_err());
    }

    #[test]
    fn entries_must_name_devices_the_workers_can_use() {
        let l = |s: &str| parse_list(s).unwrap();
        let e = check_entries(&l("cuda:0,cuda:4"), "auto", 4)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("entry cuda:4: only cuda:0..cuda:3 are visible"),
            "{e}"
        );
        let e = check_entries(&l("cuda:0"), "auto", 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no CUDA device is visible"), "{e}");
        assert!(check_entries(&l("cuda:0"), "cpu", 1).is_err());
        assert!(check_entries(&l("cpu"), "cuda", 1).is_err());
        assert!(check_entries(&l("cuda:0,cuda:1"), "cuda:1", 2).is_err());
        check_entries(&l("cuda:0,cuda:1,cuda:1"), "auto", 2).unwrap();
        check_entries(&l("cuda:0"), "cuda:0", 1).unwrap();
        check_entries(&l("cpu,cpu"), "auto", 0).unwrap();
        let g = |s: &str| group_ranks(l(s), 2).unwrap();
        let e = check_entries(&g("cuda:0,cuda:1,cuda:2,cuda:5"), "auto", 4)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("entry cuda:5"),
            "a rank's GPU is checked too: {e}"
        );
        check_entries(&g("cuda:0,cuda:1,cuda:2,cuda:3"), "auto", 4).unwrap();
    }
}
