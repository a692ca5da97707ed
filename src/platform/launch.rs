//! Which rank of which group this process is, as its launcher says:
//! torchrun's environment (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//! `MASTER_ADDR`, `MASTER_PORT`; `run --ranks N` sets the same for its
//! children), or Slurm's srun (`SLURM_PROCID`, `SLURM_STEP_NUM_TASKS`,
//! `SLURM_LOCALID`; the rendezvous is the first host of the step's node list
//! unless `MASTER_ADDR` is set, on `MASTER_PORT` or a port derived from the
//! job and step ids). A batch script outside srun is not a step of several
//! tasks: it trains alone. torchrun's variables with `WORLD_SIZE=1` make a
//! group of one (every collective of the data-parallel path, the bits of a
//! single process); a single srun task, or `--ranks 1`, is no group.
use anyhow::{bail, Result};

/// Who started this rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// torchrun's variables (also what `run --ranks` sets).
    Torchrun,
    /// A Slurm job step started by srun.
    Srun,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankEnv {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    pub addr: String,
    pub port: u16,
    pub source: Source,
}

/// The port of a Slurm step's rendezvous without `MASTER_PORT`: one of
/// 20000..40000 from the job and step ids (two steps running at once in one
/// job get different ports).
pub fn slurm_port(job: u64, step: u64) -> u16 {
    (20000 + (job.wrapping_mul(31).wrapping_add(step)) % 20000) as u16
}

/// The first host of a Slurm host list (`node[03-05,9],gpu1` -> `node03`).
pub fn first_host(list: &str) -> Option<String> {
    let list = list.trim();
    let end = {
        let mut depth = 0;
        let mut end = list.len();
        for (i, c) in list.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                ',' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        end
    };
    let first = &list[..end];
    if first.is_empty() {
        return None;
    }
    match first.split_once('[') {
        None => Some(first.to_string()),
        Some((prefix, rest)) => {
            let inner = rest.split(']').next()?;
            let lo = inner.split([',', '-']).next()?;
            if lo.is_empty() {
                return None;
            }
            Some(format!("{prefix}{lo}{}", rest.split_once(']')?.1))
        }
    }
}

fn var(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).filter(|v| !v.trim().is_empty())
}

fn num<T: std::str::FromStr>(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<T> {
    let v = var(get, name).unwrap_or_default();
    v.trim().parse().map_err(|_| {
        anyhow::anyhow!("environment variable {name} = `{v}`: expected a non-negative integer")
    })
}

/// The rank this process is, from `get` (the environment); `None` when no
/// launcher started it as one of several.
pub fn detect(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<RankEnv>> {
    if var(get, "RANK").is_some() || var(get, "WORLD_SIZE").is_some() {
        let world: usize = num(get, "WORLD_SIZE")?;
        let rank: usize = num(get, "RANK")?;
        if world == 0 {
            bail!("environment: WORLD_SIZE = 0: expected at least 1");
        }
        // WORLD_SIZE = 1 (torchrun --nproc-per-node 1): a group of one,
        // which trains the bits of a single process through every collective.
        if rank >= world {
            bail!("environment: RANK = {rank} is not below WORLD_SIZE = {world}");
        }
        let local_rank = match var(get, "LOCAL_RANK") {
            Some(_) => num(get, "LOCAL_RANK")?,
            None => rank,
        };
        let Some(addr) = var(get, "MASTER_ADDR") else {
            bail!("environment: RANK and WORLD_SIZE are set but MASTER_ADDR is not (the rendezvous host, as torchrun sets it)");
        };
        if var(get, "MASTER_PORT").is_none() {
            bail!("environment: RANK and WORLD_SIZE are set but MASTER_PORT is not (the rendezvous port, as torchrun sets it)");
        }
        return Ok(Some(RankEnv {
            rank,
            world,
            local_rank,
            addr,
            port: num(get, "MASTER_PORT")?,
            source: Source::Torchrun,
        }));
    }
    // srun sets SLURM_STEP_NUM_TASKS for the tasks of a step; a batch script
    // (the batch step) has SLURM_PROCID = 0 and the allocation's SLURM_NTASKS
    // but is one process.
    if var(get, "SLURM_STEP_NUM_TASKS").is_some() && var(get, "SLURM_PROCID").is_some() {
        let world: usize = num(get, "SLURM_STEP_NUM_TASKS")?;
        if world <= 1 {
            return Ok(None);
        }
        let rank: usize = num(get, "SLURM_PROCID")?;
        if rank >= world {
            bail!("environment: SLURM_PROCID = {rank} is not below SLURM_STEP_NUM_TASKS = {world}");
        }
        let local_rank = match var(get, "SLURM_LOCALID") {
            Some(_) => num(get, "SLURM_LOCALID")?,
            None => 0,
        };
        let addr = match var(get, "MASTER_ADDR") {
            Some(a) => a,
            None => {
                let list = var(get, "SLURM_STEP_NODELIST")
                    .or_else(|| var(get, "SLURM_JOB_NODELIST"))
                    .or_else(|| var(get, "SLURM_NODELIST"))
                    .unwrap_or_default();
                first_host(&list).ok_or_else(|| {
                    anyhow::anyhow!("environment: SLURM_STEP_NODELIST = `{list}`: expected a Slurm host list (the rendezvous is its first host); or set MASTER_ADDR")
                })?
            }
        };
        let port = match var(get, "MASTER_PORT") {
            Some(_) => num(get, "MASTER_PORT")?,
            None => slurm_port(
                num(get, "SLURM_JOB_ID").unwrap_or(0),
                var(get, "SLURM_STEP_ID")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            ),
        };
        return Ok(Some(RankEnv {
            rank,
            world,
            local_rank,
            addr,
            port,
            source: Source::Srun,
        }));
    }
    Ok(None)
}

/// [`detect`] on this process's environment.
pub fn from_env() -> Result<Option<RankEnv>> {
    detect(&|k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Option<RankEnv>> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        detect(&move |k| m.get(k).cloned())
    }

    #[test]
    fn host_lists() {
        assert_eq!(first_host("node[03-05,9],gpu1").as_deref(), Some("node03"));
        assert_eq!(first_host("gpu1,gpu2").as_deref(), Some("gpu1"));
        assert_eq!(first_host("a[7]-ib").as_deref(), Some("a7-ib"));
        assert_eq!(first_host("solo").as_deref(), Some("solo"));
        assert_eq!(first_host(""), None);
    }

    #[test]
    fn torchrun_environment() {
        let e = env(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29500"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.rank, e.world, e.local_rank, e.addr.as_str(), e.port),
            (1, 2, 1, "10.0.0.1", 29500)
        );
        assert_eq!(e.source, Source::Torchrun);
        let one = env(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29500"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(one.world, 1, "a group of one");
        assert!(env(&[("RANK", "0"), ("WORLD_SIZE", "0")]).is_err());
        let err = env(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "1")]).unwrap_err();
        assert!(err.to_string().contains("MASTER_ADDR"), "{err}");
        let err = env(&[("RANK", "x"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(err.to_string().contains("RANK = `x`"), "{err}");
        assert!(env(&[
            ("RANK", "2"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "a"),
            ("MASTER_PORT", "1")
        ])
        .is_err());
    }

    #[test]
    fn srun_steps_and_batch_scripts() {
        let e = env(&[
            ("SLURM_PROCID", "3"),
            ("SLURM_STEP_NUM_TASKS", "4"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_STEP_NODELIST", "gpu[12-13]"),
            ("SLURM_JOB_ID", "77"),
            ("SLURM_STEP_ID", "0"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.rank, e.world, e.local_rank, e.addr.as_str()),
            (3, 4, 1, "gpu12")
        );
        assert_eq!(e.port, slurm_port(77, 0));
        assert_eq!(e.source, Source::Srun);
        // A batch script: the allocation's task count, but one process.
        assert!(env(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "4")])
            .unwrap()
            .is_none());
        assert_ne!(slurm_port(77, 0), slurm_port(77, 1));
        assert!((20000..40000).contains(&slurm_port(u64::MAX, 9)));
    }
}
