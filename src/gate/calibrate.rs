//! `ddgsd-bench calibrate`: sets the bands of an expected file from a
//! results directory of reference runs. Per (arch, arm) group and metric:
//! centre = mean over seeds, tolerance = max(floor, k × seed sd), seeds = n.
//! Bands whose source is a publication (`published = true`) are kept as
//! they are; comments, claims, pins and every other band stay untouched
//! (toml_edit, like `pin`). The file is validated, then written atomically.
use crate::gate::expected::{Expected, Metric};
use crate::gate::stats::mean_sd;
use crate::train::record::Record;
use crate::util::atomic;
use crate::util::error::{read_text, InputError};
use anyhow::{bail, Result};
use std::collections::BTreeSet;
use std::path::Path;
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub metric: Metric,
    /// Multiple of the sample sd of the seeds.
    pub k: f64,
    /// Smallest tolerance (accuracy points).
    pub floor: f64,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            metric: Metric::Top1Final,
            k: 2.0,
            floor: 0.5,
        }
    }
}

impl Rule {
    /// The band of values `xs` (one per seed): (centre, tolerance, the sd
    /// as the source states it). The centre is rounded to two decimals and
    /// the tolerance never below that rounding, so the band holds on the
    /// runs it came from (with `--floor 0` too). One seed has no sample sd:
    /// its tolerance is the floor.
    pub fn band(&self, xs: &[f64]) -> (f64, f64, String) {
        let (mean, sd) = mean_sd(xs);
        let centre = round2(mean);
        let (spread, sd_text) = if xs.len() < 2 {
            (
                0.0,
                "sd undefined: one seed, tolerance = the floor".to_string(),
            )
        } else {
            (self.k * sd, format!("sd {sd:.2}"))
        };
        let rounding = ((mean - centre).abs() * 100.0 - 1e-9).ceil().max(0.0) / 100.0;
        let tolerance = round2(spread.max(self.floor)).max(rounding);
        (centre, tolerance, sd_text)
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub added: usize,
    pub updated: usize,
    /// Groups left alone because their band is a publication's.
    pub kept_published: usize,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

const MARKER: &str = "# calibrate:";

/// Writes (or creates) `path` from `records` (one suite) under `rule`;
/// `note` ends each band's `source` (platform, date, ...).
pub fn calibrate(
    path: &Path,
    suite: &str,
    records: &[Record],
    rule: &Rule,
    note: &str,
) -> Result<Outcome> {
    if !(rule.k.is_finite() && rule.k >= 0.0) {
        bail!("--k {}: expected a finite number >= 0", rule.k);
    }
    if !(rule.floor.is_finite() && rule.floor >= 0.0) {
        bail!("--floor {}: expected a finite number >= 0", rule.floor);
    }
    atomic::refuse_read_only(path, "calibrate")?;
    let text = if path.exists() {
        Expected::load(path)?.require_suite(suite, "results are of")?;
        read_text(path)?
    } else {
        format!("suite = \"{suite}\"\n")
    };
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| InputError::new(path, None, e.message().to_string()))?;
    let bands = doc
        .entry("band")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    let Some(bands) = bands.as_array_of_tables_mut() else {
        bail!(InputError::new(
            path,
            Some("band"),
            "expected an array of tables ([[band]])"
        ));
    };
    let groups: BTreeSet<(&str, &str)> = records
        .iter()
        .map(|r| (r.arch.as_str(), r.arm.as_str()))
        .collect();
    let mut out = Outcome::default();
    for (arch, arm) in groups {
        let mut runs: Vec<&Record> = records
            .iter()
            .filter(|r| r.arch == arch && r.arm == arm)
            .collect();
        runs.sort_by_key(|r| r.seed);
        let xs: Vec<f64> = runs.iter().map(|r| rule.metric.of(&r.metrics)).collect();
        let (centre, tolerance, sd) = rule.band(&xs);
        let seeds: Vec<String> = runs
            .iter()
            .zip(&xs)
            .map(|(r, x)| format!("{}: {x:.2}", r.seed))
            .collect();
        let selection = if rule.metric == Metric::Top1Best {
            format!("; {}", crate::gate::check::best_selection(&runs))
        } else {
            String::new()
        };
        let source = format!(
            "calibrate: reference runs of this project (seeds {}; {sd}){note}{selection}",
            seeds.join(", ")
        );
        let existing = bands.iter_mut().find(|t| {
            t.get("arch").and_then(|v| v.as_str()) == Some(arch)
                && t.get("arm").and_then(|v| v.as_str()) == Some(arm)
                && t.get("metric").and_then(|v| v.as_str()) == Some(rule.metric.name())
        });
        let t = match existing {
            Some(t) if t.get("published").and_then(|v| v.as_bool()) == Some(true) => {
                out.kept_published += 1;
                continue;
            }
            Some(t) => {
                out.updated += 1;
                t
            }
            None => {
                let mut t = Table::new();
                t.insert("arch", value(arch));
                t.insert("arm", value(arm));
                t.insert("metric", value(rule.metric.name()));
                bands.push(t);
                out.added += 1;
                bands.iter_mut().last().expect("just pushed")
            }
        };
        t.insert("centre", value(centre));
        t.insert("tolerance", value(tolerance));
        t.insert("seeds", value(runs.len() as i64));
        t.insert("source", value(source));
        t.insert("verified", value(true));
    }
    let mut s = doc.to_string();
    if !s.contains(MARKER) {
        s = format!(
            "{MARKER} bands set by `ddgsd-bench calibrate` have centre = mean over seeds and\n\
             # tolerance = max({floor}, {k} x the seeds' sample sd) (--floor, --k), seeds = n; bands with\n\
             # `published = true` are never moved by it. Review the diff of this file before merging.\n{s}",
            floor = rule.floor,
            k = rule.k
        );
    }
    // What we write must be a valid expected file.
    let mut probe: Expected = crate::util::error::parse_toml(path, &s)?;
    probe.file = path.to_path_buf();
    probe.validate()?;
    atomic::write(path, s.as_bytes())?;
    Ok(out)
}

/// Today's date (UTC) as YYYY-MM-DD, for the `source` of a band.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil(secs / 86_400)
}

/// Days since 1970-01-01 to a date (H. Hinnant's civil_from_days).
fn civil(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn tolerance_rule() {
        let r = super::Rule::default();
        // sd 0.1, 0.4, 0.333 (two seeds: sd = |a - b| / sqrt 2).
        let two = |sd: f64| [50.0, 50.0 + sd * 2f64.sqrt()];
        assert_eq!(r.band(&two(0.1)).1, 0.5);
        assert_eq!(r.band(&two(0.4)).1, 0.8);
        assert_eq!(r.band(&two(0.333)).1, 0.67);
        assert!(r.band(&two(0.4)).2.contains("sd 0.40"));
        let (c, t, sd) = r.band(&[61.234]);
        assert_eq!((c, t), (61.23, 0.5));
        assert!(sd.contains("undefined"), "{sd}");
        // --floor 0 --k 0: the band still holds on its own runs.
        let zero = super::Rule {
            k: 0.0,
            floor: 0.0,
            ..r
        };
        for xs in [vec![61.234], vec![61.2371, 61.2389], vec![70.0, 70.0]] {
            let (c, t, _) = zero.band(&xs);
            let mean = xs.iter().sum::<f64>() / xs.len() as f64;
            assert!((mean - c).abs() <= t + 1e-9, "{xs:?}: {c} ± {t}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(super::civil(0), "1970-01-01");
        assert_eq!(super::civil(20_454), "2026-01-01");
        assert_eq!(super::civil(11_016), "2000-02-29");
    }
}
