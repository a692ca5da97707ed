//! The plan of a suite: its runs in order (architecture, arm, seed).
use super::resolve::{ResolvedSuite, RunConfig};

pub type PlannedRun = RunConfig;

pub struct Plan<'a> {
    pub suite: &'a ResolvedSuite,
}

impl<'a> Plan<'a> {
    pub fn new(suite: &'a ResolvedSuite) -> Self {
        Plan { suite }
    }

    pub fn runs(&self) -> &[RunConfig] {
        &self.suite.runs
    }

    /// One line per run, for `ddgsd-bench plan` (with a partition: only
    /// that worker's share, numbered as in the whole plan).
    pub fn describe(&self, part: Option<super::partition::Partition>) -> String {
        let mut out = format!(
            "suite `{}`: {} runs ({} architectures x {} arms x {} seeds) on {}{}\n",
            self.suite.name,
            self.suite.runs.len(),
            self.suite.archs.len(),
            self.suite.arms.len(),
            self.suite.seeds.len(),
            self.suite.dataset.describe(),
            match self.suite.runs.first().and_then(|r| r.holdout) {
                Some(h) => format!(
                    ", {} training samples held out for validation (seed {})",
                    h.n, h.seed
                ),
                None => String::new(),
            }
        );
        let mine = |r: &RunConfig| part.is_none_or(|p| p.holds(self.suite, r));
        if let Some(p) = part {
            out.push_str(&format!(
                "partition hash:{}/{}: {} of the {} runs\n",
                p.m,
                p.n,
                self.suite.runs.iter().filter(|r| mine(r)).count(),
                self.suite.runs.len()
            ));
        }
        for (i, r) in self.suite.runs.iter().enumerate() {
            if !mine(r) {
                continue;
            }
            let views = r.arm.views;
            let after = match &r.teacher {
                Some(t) => match (&t.run, &t.file) {
                    (Some(run), _) => format!("  after {run} (its teacher)"),
                    (None, Some(f)) => {
                        let h = t.checkpoint_sha256.as_deref().unwrap_or("");
                        format!("  teacher {} ({})", f.display(), &h[..h.len().min(16)])
                    }
                    _ => String::new(),
                },
                None => String::new(),
            };
            out.push_str(&format!(
                "{:>4}  {:<40} views {}  epochs {:>4}  batch {:>4}  {}{}{after}\n",
                i + 1,
                r.run_id,
                views,
                r.train.epochs,
                r.train.batch_size,
                r.arm.method.describe(),
                r.arm
                    .preset
                    .as_ref()
                    .map(|p| format!("  preset {p}"))
                    .unwrap_or_default()
            ));
        }
        out
    }
}
