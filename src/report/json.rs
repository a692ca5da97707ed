//! JSON: the report, every directory's verdict, and whether all passed.
use super::{verdict_json, Exporter, Judged, Report};
use anyhow::Result;

pub struct Json;

impl Exporter for Json {
    fn render(&self, r: &Report, suites: &[Judged]) -> Result<String> {
        let verdicts = suites
            .iter()
            .map(|j| verdict_json(j.verdict))
            .collect::<Result<Vec<_>>>()?;
        let val = serde_json::json!({
            "report": r,
            "verdicts": verdicts,
            "passed": suites.iter().all(|j| j.verdict.passed()),
        });
        Ok(serde_json::to_string_pretty(&val)? + "\n")
    }
}
