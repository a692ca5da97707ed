//! The verdict lines under the ablation table (what `check` prints): the
//! bands, claims and pins that did not simply pass, and the verdict; and the
//! verdict as JSON (verdict.json).
use crate::gate::check::{PinStatus, Verdict};
use crate::util::exit::Exit;
use anyhow::Result;

/// The planned runs without a record, or nothing when every one has one.
fn unfinished(v: &Verdict) -> String {
    if v.complete() {
        return String::new();
    }
    let mut parts = Vec::new();
    if !v.unfinished.is_empty() {
        parts.push(format!("unfinished: {}", v.unfinished.join(", ")));
    }
    if !v.never_begun.is_empty() {
        parts.push(format!("never begun: {}", v.never_begun.join(", ")));
    }
    format!(
        "Runs: {} of {} planned have no record ({}).\n",
        v.unfinished.len() + v.never_begun.len(),
        v.planned,
        parts.join("; ")
    )
}

/// Everything `check` prints after the table.
pub fn footer(v: &Verdict) -> String {
    let mut out = unfinished(v);
    if !v.checked {
        out.push_str(&format!(
            "No expected file: nothing checked.\n\nDataset fingerprint: {}\n",
            v.dataset_fingerprints.join(", ")
        ));
        return out;
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
    if let Some(s) = &v.best_selection {
        out.push_str(&format!("- note: {s}\n"));
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
    out.push_str(&match v.exit() {
        Exit::NoVerdict => format!(
            "Verdict: none: {} of the {} planned runs have no record\n",
            v.unfinished.len() + v.never_begun.len(),
            v.planned
        ),
        _ if v.passed() => "Verdict: PASS\n".into(),
        _ => "Verdict: FAIL\n".into(),
    });
    out
}

/// The verdict as JSON with `passed` added.
pub fn verdict_json(v: &Verdict) -> Result<serde_json::Value> {
    let mut val = serde_json::to_value(v)?;
    val["passed"] = serde_json::Value::Bool(v.passed());
    val["complete"] = serde_json::Value::Bool(v.complete());
    Ok(val)
}
