//! Loading what `report` renders: a results directory, its expected file
//! (given, or the one recorded when the suite ran if it still exists, or
//! none), and its verdict.
use super::Judged;
use crate::gate::check::{judge, Verdict};
use crate::gate::expected::Expected;
use crate::results::{self, Loaded};
use anyhow::Result;
use std::path::{Path, PathBuf};

pub struct Input {
    pub loaded: Loaded,
    pub expected: Expected,
    pub verdict: Verdict,
}

impl Input {
    pub fn load(dir: &Path, expected: Option<&Path>) -> Result<Input> {
        let loaded = results::load(dir)?;
        let recorded = PathBuf::from(&loaded.meta.expected_file);
        let expected = match expected {
            Some(p) => Expected::load(p)?,
            None if recorded.is_file() => Expected::load(&recorded)?,
            None => Expected::none(&loaded.meta.suite),
        };
        let verdict = judge(
            &loaded.records,
            &expected,
            &loaded.meta.archs,
            &loaded.meta.arms,
        );
        Ok(Input {
            loaded,
            expected,
            verdict,
        })
    }

    pub fn judged(&self) -> Judged<'_> {
        Judged {
            loaded: &self.loaded,
            expected: &self.expected,
            verdict: &self.verdict,
        }
    }
}
