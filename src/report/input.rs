//! Loading what `report` renders: a results directory, its expected file
//! (given, or the one recorded when the suite ran if it still exists, or
//! none), and its verdict.
use super::Judged;
use crate::gate::check::{judge_dir, Verdict};
use crate::gate::expected::Expected;
use crate::results::{self, Loaded};
use anyhow::Result;
use std::path::Path;

pub struct Input {
    pub loaded: Loaded,
    pub expected: Expected,
    pub verdict: Verdict,
}

impl Input {
    pub fn load(dir: &Path, expected: Option<&Path>) -> Result<Input> {
        let loaded = results::load(dir)?;
        let hint = "given with --expected";
        let expected = Expected::of_dir(&loaded, expected, expected.map(|_| hint))?
            .unwrap_or_else(|| Expected::none(&loaded.meta.suite));
        let verdict = judge_dir(&loaded, &expected)?;
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
