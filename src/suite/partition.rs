//! `--partition hash:M/N`: worker M of N takes the runs whose run-id hash
//! falls in its slot, so N workers (one per GPU, or a Slurm job array)
//! share a suite without talking to each other and their results
//! directories merge by copying.
use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// 1-based slot.
    pub m: u64,
    pub n: u64,
}

impl Partition {
    /// Parses `hash:M/N` with 1 <= M <= N.
    pub fn parse(s: &str) -> Result<Partition> {
        let bad = || {
            anyhow::anyhow!("--partition `{s}`: expected hash:M/N with 1 <= M <= N, e.g. hash:1/4")
        };
        let rest = s.strip_prefix("hash:").ok_or_else(bad)?;
        let (m, n) = rest.split_once('/').ok_or_else(bad)?;
        let (m, n): (u64, u64) = (m.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if m == 0 || n == 0 || m > n {
            bail!(bad());
        }
        Ok(Partition { m, n })
    }

    /// Whether run `cfg` of `suite` is in this share: the slot of the run
    /// id at the root of its teachers (its own without one), so that a
    /// student always trains in its teacher's share.
    pub fn holds(
        &self,
        suite: &crate::suite::ResolvedSuite,
        cfg: &crate::suite::RunConfig,
    ) -> bool {
        self.contains(share_key(suite, cfg))
    }

    /// Slot of a run id: the first 8 bytes of SHA-256(run id), little-endian, mod N.
    pub fn contains(&self, run_id: &str) -> bool {
        let h = Sha256::digest(run_id.as_bytes());
        u64::from_le_bytes(h[..8].try_into().unwrap()) % self.n == self.m - 1
    }
}

/// The run id whose slot holds `cfg`: that of the first run up its chain of
/// teachers in the suite that has none.
pub fn share_key<'a>(
    suite: &'a crate::suite::ResolvedSuite,
    cfg: &'a crate::suite::RunConfig,
) -> &'a str {
    let mut cur = cfg;
    while let Some(t) = cur.teacher_run() {
        match suite.runs.iter().find(|r| r.run_id == t) {
            Some(r) => cur = r,
            None => return t,
        }
    }
    &cur.run_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cover_every_run_once() {
        let ids: Vec<String> = (0..200).map(|i| format!("resnet32__ddgsd__s{i}")).collect();
        let parts: Vec<Partition> = (1..=3).map(|m| Partition { m, n: 3 }).collect();
        for id in &ids {
            assert_eq!(parts.iter().filter(|p| p.contains(id)).count(), 1);
        }
        assert!(parts
            .iter()
            .all(|p| ids.iter().filter(|i| p.contains(i)).count() > 40));
    }

    #[test]
    fn parsing() {
        assert_eq!(
            Partition::parse("hash:2/4").unwrap(),
            Partition { m: 2, n: 4 }
        );
        for bad in [
            "hash:0/4",
            "hash:5/4",
            "count:1/2",
            "hash:1",
            "hash:a/b",
            "hash:1/0",
        ] {
            assert!(Partition::parse(bad).is_err(), "{bad}");
        }
    }
}
