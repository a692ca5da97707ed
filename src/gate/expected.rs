//! Expected files: tolerance bands, claims and checkpoint pins for a suite.
//! See README "Expected files" for the schema.
use crate::util::error::{field_err, parse_toml, read_text};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Top1Final,
    Top1Best,
}

impl Metric {
    pub fn of(self, m: &crate::train::record::Metrics) -> f64 {
        match self {
            Metric::Top1Final => m.top1_final,
            Metric::Top1Best => m.top1_best,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Metric::Top1Final => "top1_final",
            Metric::Top1Best => "top1_best",
        }
    }
}

/// The mean over seeds of `metric` for (arch, arm) must lie within
/// `centre ± tolerance`, over exactly `seeds` runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub arch: String,
    pub arm: String,
    pub metric: Metric,
    pub centre: f64,
    pub tolerance: f64,
    pub seeds: usize,
    /// Where the centre comes from (a paper's table, reference runs, ...).
    pub source: String,
    /// False while the centre is not backed by a published number or by
    /// this project's own reference runs.
    #[serde(default = "yes")]
    pub verified: bool,
    /// True when `centre` is a number printed in a publication (a paper's
    /// table, a library's published result): `report` shows it beside the
    /// measured mean and `calibrate` never moves the band.
    #[serde(default)]
    pub published: bool,
}

fn yes() -> bool {
    true
}

/// "arm `better` beats arm `worse` by at least `min_delta` points", judged
/// on the mean of the per-seed paired differences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub better: String,
    pub worse: String,
    /// One architecture, or every architecture of the suite when absent.
    #[serde(default)]
    pub arch: Option<String>,
    pub metric: Metric,
    pub min_delta: f64,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub suite: String,
    /// When given, every record's dataset fingerprint must equal it.
    #[serde(default)]
    pub dataset_fingerprint: Option<String>,
    #[serde(default, rename = "band")]
    pub bands: Vec<Band>,
    #[serde(default, rename = "claim")]
    pub claims: Vec<Claim>,
    /// platform fingerprint → (run id → checkpoint_sha256).
    #[serde(default)]
    pub pins: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(skip)]
    pub file: PathBuf,
}

impl Expected {
    /// No expectations at all (`report` without an expected file): the
    /// verdict of such a check says "nothing checked", never PASS.
    pub fn none(suite: &str) -> Expected {
        Expected {
            suite: suite.to_string(),
            dataset_fingerprint: None,
            bands: vec![],
            claims: vec![],
            pins: Default::default(),
            file: PathBuf::new(),
        }
    }

    /// The expected file that judges a results directory: `explicit`, else
    /// the one its suite.json records (an absolute path since this version;
    /// the relative path of an earlier version's suite.json is read from
    /// the current directory, and a note says so). When there is none: an
    /// error ending in `hint` when one is required, else `None`.
    pub fn of_dir(
        loaded: &crate::results::Loaded,
        explicit: Option<&Path>,
        hint: Option<&str>,
    ) -> Result<Option<Expected>> {
        let (path, relative) = match explicit {
            Some(p) => (p.to_path_buf(), false),
            None => loaded.meta.expected_path(),
        };
        if !path.is_file() {
            let why = match (explicit, hint) {
                (_, None) => return Ok(None),
                (Some(_), _) => "expected file not found (--expected)".to_string(),
                (None, Some(h)) => {
                    format!("expected file not found (the one suite.json records; {h})")
                }
            };
            return Err(crate::util::error::input_err(&path, why));
        }
        if relative {
            eprintln!(
                "ddgsd-bench: note: {}/suite.json names its expected file by a relative path (an earlier version wrote it): reading {} from the current directory",
                loaded.dir.display(),
                path.display()
            );
        }
        Ok(Some(Expected::load(&path)?))
    }

    pub fn load(file: &Path) -> Result<Expected> {
        let text = read_text(file)?;
        let mut e: Expected = parse_toml(file, &text)?;
        e.file = file.to_path_buf();
        e.validate()?;
        Ok(e)
    }

    /// Refuses an expected file written for another suite; `what` names
    /// the other side ("results are of", "this suite is", ...).
    pub fn require_suite(&self, suite: &str, what: &str) -> Result<()> {
        if self.suite != suite {
            return field_err(
                &self.file,
                "suite",
                format!("expected file of suite `{}`, {what} `{suite}`", self.suite),
            );
        }
        Ok(())
    }

    /// Refuses a band or claim naming an architecture or arm that the
    /// suite does not have (a typo would otherwise drop the band silently).
    pub fn require_plan(&self, archs: &[String], arms: &[String]) -> Result<()> {
        let f = &self.file;
        let bad = |field: String, what: &str, name: &str, of: &[String]| {
            field_err(
                f,
                &field,
                format!(
                    "`{name}` is not {what} of suite `{}` (it has {})",
                    self.suite,
                    of.iter()
                        .map(|x| format!("`{x}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        };
        for (i, b) in self.bands.iter().enumerate() {
            if !archs.contains(&b.arch) {
                return bad(format!("band[{i}].arch"), "an architecture", &b.arch, archs);
            }
            if !arms.contains(&b.arm) {
                return bad(format!("band[{i}].arm"), "an arm", &b.arm, arms);
            }
        }
        for (i, c) in self.claims.iter().enumerate() {
            if let Some(a) = c.arch.as_ref().filter(|a| !archs.contains(a)) {
                return bad(format!("claim[{i}].arch"), "an architecture", a, archs);
            }
            for (k, arm) in [("better", &c.better), ("worse", &c.worse)] {
                if !arms.contains(arm) {
                    return bad(format!("claim[{i}].{k}"), "an arm", arm, arms);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let f = &self.file;
        for (i, b) in self.bands.iter().enumerate() {
            if !(b.tolerance.is_finite() && b.tolerance >= 0.0) {
                return field_err(
                    f,
                    &format!("band[{i}].tolerance"),
                    format!("expected a finite value >= 0, got {}", b.tolerance),
                );
            }
            if !(0.0..=100.0).contains(&b.centre) {
                return field_err(
                    f,
                    &format!("band[{i}].centre"),
                    format!("expected an accuracy in [0, 100], got {}", b.centre),
                );
            }
            if b.published && !b.verified {
                return field_err(
                    f,
                    &format!("band[{i}].published"),
                    "a published number is verified: drop `verified = false` or `published = true`",
                );
            }
            if b.seeds == 0 {
                return field_err(f, &format!("band[{i}].seeds"), "expected at least 1");
            }
            if self.bands[..i]
                .iter()
                .any(|o| o.arch == b.arch && o.arm == b.arm && o.metric == b.metric)
            {
                return field_err(
                    f,
                    &format!("band[{i}]"),
                    format!(
                        "a second band for ({}, {}, {})",
                        b.arch,
                        b.arm,
                        b.metric.name()
                    ),
                );
            }
        }
        for (i, c) in self.claims.iter().enumerate() {
            if !c.min_delta.is_finite() {
                return field_err(
                    f,
                    &format!("claim[{i}].min_delta"),
                    "expected a finite number",
                );
            }
            if c.better == c.worse {
                return field_err(
                    f,
                    &format!("claim[{i}]"),
                    "`better` and `worse` name the same arm",
                );
            }
        }
        for (platform, pins) in &self.pins {
            for (run, sha) in pins {
                if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                    return field_err(
                        f,
                        &format!("pins.\"{platform}\".{run}"),
                        "expected a 64-digit hex SHA-256",
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_files_mark_the_published_bands() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("expected");
        let mut published = Vec::new();
        for f in [
            "smoke",
            "gpu-smoke",
            "cifar10",
            "cifar100",
            "cifar10-tuning",
            "cifar100-tuning",
            "imagenet",
            "selfkd-smoke",
            "selfkd-cifar100",
            "selfkd-pskd-cifar100",
        ] {
            let e = Expected::load(&root.join(format!("{f}.toml"))).unwrap();
            for b in e.bands.iter().filter(|b| b.published) {
                published.push(format!("{f}:{}:{}:{}", b.arch, b.arm, b.centre));
            }
        }
        assert_eq!(
            published,
            [
                "cifar10:resnet32:baseline:92.49",
                "cifar10:resnet56:baseline:93.03",
                "cifar100:resnet18:baseline:76.55",
                "cifar100:resnet18:ddgsd:78.53",
                "imagenet:imagenet_resnet18:baseline:69.76",
                "selfkd-cifar100:preact_resnet18:baseline:76.24",
                "selfkd-cifar100:preact_resnet18:ddgsd:76.61",
                "selfkd-cifar100:preact_resnet18:cs_kd:78.66",
                "selfkd-cifar100:preact_resnet18:ps_kd:79.31",
                "selfkd-cifar100:preact_resnet18:tf_kd_reg:76.61",
                "selfkd-cifar100:preact_resnet18:label_smoothing:78.72",
                "selfkd-cifar100:preact_resnet18:byot:77.88",
                "selfkd-cifar100:resnet18:byot:78.73",
                "selfkd-pskd-cifar100:preact_resnet18:baseline:75.82",
                "selfkd-pskd-cifar100:preact_resnet18:label_smoothing:79.06",
                "selfkd-pskd-cifar100:preact_resnet18:cs_kd:78.7",
                "selfkd-pskd-cifar100:preact_resnet18:ps_kd:79.18",
            ]
        );
    }

    #[test]
    fn bands_and_claims_of_unknown_architectures_or_arms_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("e.toml");
        let band = |arch: &str, arm: &str| {
            format!("[[band]]\narch = \"{arch}\"\narm = \"{arm}\"\nmetric = \"top1_final\"\ncentre = 50.0\ntolerance = 1.0\nseeds = 1\nsource = \"x\"\n")
        };
        let (archs, arms) = (
            vec!["r8".to_string()],
            vec!["baseline".to_string(), "ddgsd".to_string()],
        );
        let cases = [
            (format!("{}{}", band("r8", "baseline"), band("r8", "ddgsdd")), "band[1].arm", "`ddgsdd` is not an arm"),
            (band("r9", "baseline"), "band[0].arch", "`r9` is not an architecture"),
            ("[[claim]]\nbetter = \"ddgsd\"\nworse = \"basline\"\nmetric = \"top1_final\"\nmin_delta = 0.0\nsource = \"x\"\n".to_string(), "claim[0].worse", "`basline`"),
            ("[[claim]]\nbetter = \"ddgsd\"\nworse = \"baseline\"\narch = \"r7\"\nmetric = \"top1_final\"\nmin_delta = 0.0\nsource = \"x\"\n".to_string(), "claim[0].arch", "`r7`"),
        ];
        for (body, field, what) in cases {
            std::fs::write(&f, format!("suite = \"s\"\n{body}")).unwrap();
            let e = Expected::load(&f)
                .unwrap()
                .require_plan(&archs, &arms)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("field `{field}`")) && e.contains(what),
                "{e}"
            );
        }
    }

    #[test]
    fn published_needs_verified_and_old_files_stay_valid() {
        let d = tempfile::tempdir().unwrap();
        let band = "suite = \"s\"\n[[band]]\narch = \"a\"\narm = \"b\"\nmetric = \"top1_final\"\ncentre = 50.0\ntolerance = 1.0\nseeds = 1\nsource = \"x\"\n";
        let f = d.path().join("e.toml");
        std::fs::write(&f, band).unwrap();
        assert!(!Expected::load(&f).unwrap().bands[0].published);
        std::fs::write(&f, format!("{band}verified = false\npublished = true\n")).unwrap();
        let e = Expected::load(&f).unwrap_err().to_string();
        assert!(e.contains("band[0].published"), "{e}");
    }
}
