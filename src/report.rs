//! Rendering a [`Verdict`]: one [`Exporter`] per output format.
//!
//! Markdown (for papers and CI logs): one row per architecture, one column
//! per arm, cells `mean ± sd (n)` of top-1 with the Δ against `baseline`,
//! ✗ on a cell whose band failed, `no band` where none exists; then the
//! bands, claims and pins that did not simply pass.
use crate::check::{PinStatus, Verdict};
use anyhow::Result;
use tabled::{builder::Builder, settings::Style};

pub trait Exporter {
    fn render(&self, v: &Verdict) -> Result<String>;
}

pub struct Markdown;
pub struct Csv;
pub struct Json;

/// Exporter for a `--format` value.
pub fn exporter(format: &str) -> Option<Box<dyn Exporter>> {
    match format {
        "markdown" | "md" => Some(Box::new(Markdown)),
        "csv" => Some(Box::new(Csv)),
        "json" => Some(Box::new(Json)),
        _ => None,
    }
}

fn delta(v: &Verdict, arch: &str, arm: &str) -> Option<f64> {
    if arm == "baseline" {
        return None;
    }
    let base = v.cell(arch, "baseline")?;
    let cell = v.cell(arch, arm)?;
    Some(cell.mean - base.mean)
}

impl Exporter for Markdown {
    fn render(&self, v: &Verdict) -> Result<String> {
        let mut b = Builder::default();
        let mut head = vec!["arch".to_string()];
        head.extend(v.arms.iter().cloned());
        b.push_record(head);
        for arch in &v.archs {
            let mut row = vec![arch.clone()];
            for arm in &v.arms {
                let mut s = match v.cell(arch, arm) {
                    Some(c) => format!("{:.2} ± {:.2} ({})", c.mean, c.sd, c.values.len()),
                    None => "–".to_string(),
                };
                if let Some(d) = delta(v, arch, arm) {
                    s.push_str(&format!(" Δ {d:+.2}"));
                }
                if !v.failed_bands(arch, arm).is_empty() {
                    s.push_str(" ✗");
                } else if v.checked && v.cell(arch, arm).is_some() && !v.has_band(arch, arm) {
                    s.push_str(" (no band)");
                }
                row.push(s);
            }
            b.push_record(row);
        }
        let mut table = b.build();
        table.with(Style::markdown());
        let mut out = format!(
            "### {}: top-1 final (%), mean ± sd (n seeds), Δ vs baseline\n\n{table}\n\n",
            v.suite
        );
        if !v.checked {
            out.push_str(&format!(
                "No expected file: nothing checked.\n\nDataset fingerprint: {}\n",
                v.dataset_fingerprints.join(", ")
            ));
            return Ok(out);
        }
        let failed_bands: Vec<_> = v.bands.iter().filter(|b| !b.pass).collect();
        out.push_str(&format!(
            "Bands ({}): {} checked, {} hold, {} failed; {} groups without a band.\n",
            v.expected_file,
            v.bands.len(),
            v.bands.len() - failed_bands.len(),
            failed_bands.len(),
            v.unbanded.len()
        ));
        for b in failed_bands {
            out.push_str(&format!(
                "- ✗ {} / {} {}: {} [{}]\n",
                b.band.arch,
                b.band.arm,
                b.band.metric.name(),
                b.reason,
                b.band.source
            ));
        }
        for (a, m) in &v.unbanded {
            out.push_str(&format!("- ✗ {a} / {m}: no band in the expected file\n"));
        }
        let unverified = v.bands.iter().filter(|b| !b.band.verified).count();
        if unverified > 0 {
            out.push_str(&format!("- note: {unverified} band(s) are marked unverified (no published number or reference run yet)\n"));
        }
        if !v.claims.is_empty() {
            out.push_str("\nClaims (paired over seeds):\n");
            for c in &v.claims {
                out.push_str(&format!(
                    "- {} {} beats {} by ≥ {:.2} on {} ({}): {} (n {}) [{}]\n",
                    if c.pass { "✓" } else { "✗" },
                    c.claim.better,
                    c.claim.worse,
                    c.claim.min_delta,
                    c.arch,
                    c.claim.metric.name(),
                    c.reason,
                    c.diffs.len(),
                    c.claim.source
                ));
            }
        }
        let (mut ok, mut bad, mut run_np, mut plat_np) = (0, 0, 0, 0);
        for p in &v.pins {
            match &p.status {
                PinStatus::Match => ok += 1,
                PinStatus::Mismatch { .. } => bad += 1,
                PinStatus::RunNotPinned => run_np += 1,
                PinStatus::PlatformNotPinned => plat_np += 1,
            }
        }
        out.push_str(&format!(
            "\nCheckpoint pins: {ok} match, {bad} differ, {run_np} runs not pinned, {plat_np} runs not pinned for this platform"
        ));
        if let Some(p) = v.pins.first() {
            out.push_str(&format!(" (`{}`)", p.platform));
        }
        out.push_str(".\n");
        for p in &v.pins {
            if let PinStatus::Mismatch { expected, got } = &p.status {
                out.push_str(&format!(
                    "- ✗ {}: checkpoint_sha256 {got}, pinned {expected}\n",
                    p.run_id
                ));
            }
        }
        for r in &v.fingerprint_mismatches {
            out.push_str(&format!(
                "- ✗ {r}: dataset fingerprint differs from the expected file's\n"
            ));
        }
        if v.dataset_fingerprints.len() > 1 {
            out.push_str(&format!(
                "- ✗ the records come from {} different datasets (merged results of different data?)\n",
                v.dataset_fingerprints.len()
            ));
        }
        out.push_str(&format!(
            "\nDataset fingerprint: {}\n",
            v.dataset_fingerprints.join(", ")
        ));
        out.push_str(&format!(
            "Verdict: {}\n",
            if v.passed() { "PASS" } else { "FAIL" }
        ));
        Ok(out)
    }
}

impl Exporter for Csv {
    fn render(&self, v: &Verdict) -> Result<String> {
        let mut out = String::from("arch,arm,n,mean,sd,delta_vs_baseline,band,seeds\n");
        for c in &v.cells {
            let band = if !v.failed_bands(&c.arch, &c.arm).is_empty() {
                "fail"
            } else if v.has_band(&c.arch, &c.arm) {
                "pass"
            } else {
                "none"
            };
            let seeds: Vec<String> = c
                .values
                .iter()
                .map(|(s, x)| format!("{s}:{x:.4}"))
                .collect();
            out.push_str(&format!(
                "{},{},{},{:.4},{:.4},{},{},{}\n",
                c.arch,
                c.arm,
                c.values.len(),
                c.mean,
                c.sd,
                delta(v, &c.arch, &c.arm)
                    .map(|d| format!("{d:.4}"))
                    .unwrap_or_default(),
                band,
                seeds.join(" ")
            ));
        }
        Ok(out)
    }
}

impl Exporter for Json {
    fn render(&self, v: &Verdict) -> Result<String> {
        let mut val = serde_json::to_value(v)?;
        val["passed"] = serde_json::Value::Bool(v.passed());
        Ok(serde_json::to_string_pretty(&val)? + "\n")
    }
}
