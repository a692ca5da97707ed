//! CSV: one line per cell (long format), numbers with 4 decimals and
//! empty fields where a value does not apply.
use super::{BandMark, Exporter, Judged, Report};
use anyhow::Result;

pub struct Csv;

pub const HEADER: &str = "layout,arch,arm,column,metric,which,n,mean,sd,published,published_diff,published_source,delta_vs_baseline,ci95_low,ci95_high,p_one_sided,best,band,seeds";

fn f(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.4}")).unwrap_or_default()
}

/// Quotes a field that needs it (RFC 4180).
fn q(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Exporter for Csv {
    fn render(&self, r: &Report, _: &[Judged]) -> Result<String> {
        let mut out = format!("{HEADER}\n");
        let layout = serde_json::to_value(r.layout)?;
        let which = serde_json::to_value(r.which)?;
        for row in &r.rows {
            let arch = &row.labels[0];
            for (i, c) in row.cells.iter().enumerate() {
                let Some(c) = c else { continue };
                let (arm, column) = match row.labels.get(1) {
                    Some(m) => (m.as_str(), r.columns[i].as_str()),
                    None => (r.columns[i].as_str(), ""),
                };
                let vb = c.vs_baseline.as_ref();
                let seeds: Vec<String> = c
                    .values
                    .iter()
                    .map(|(s, x)| format!("{s}:{x:.4}"))
                    .collect();
                let band = match c.band {
                    BandMark::Pass => "pass",
                    BandMark::Fail => "fail",
                    BandMark::NoBand => "none",
                    BandMark::Unchecked => "",
                };
                let fields = [
                    layout.as_str().unwrap_or_default().to_string(),
                    q(arch),
                    q(arm),
                    q(column),
                    r.column_metrics[i].to_string(),
                    which.as_str().unwrap_or_default().to_string(),
                    c.n.to_string(),
                    format!("{:.4}", c.mean),
                    format!("{:.4}", c.sd),
                    f(c.published.as_ref().map(|p| p.value)),
                    f(c.published.as_ref().map(|p| p.diff)),
                    c.published
                        .as_ref()
                        .map(|p| q(&r.sources[p.source - 1]))
                        .unwrap_or_default(),
                    f(vb.map(|d| d.mean)),
                    f(vb.and_then(|d| d.ci95.map(|c| c.0))),
                    f(vb.and_then(|d| d.ci95.map(|c| c.1))),
                    f(vb.and_then(|d| d.p_one_sided)),
                    c.best.to_string(),
                    band.to_string(),
                    seeds.join(" "),
                ];
                out.push_str(&fields.join(","));
                out.push('\n');
            }
        }
        Ok(out)
    }
}
