//! Checking one field or section of a suite file: ranges, enumerations,
//! loss constants and the dataset section. Every error names the file and
//! the field.
use super::raw::{RawDataset, RawLoss};
use crate::data::holdout::HoldoutSpec;
use crate::data::synthetic::SyntheticSpec;
use crate::data::DatasetSpec;
use crate::method::loss::{KlReduction, LossConfig, MmdKind};
use crate::util::error::field_err;
use anyhow::Result;
use std::path::Path;

pub fn positive<T: PartialOrd + Default + std::fmt::Display>(
    file: &Path,
    field: &str,
    v: T,
) -> Result<T> {
    if v > T::default() {
        Ok(v)
    } else {
        field_err(file, field, format!("expected a positive value, got {v}"))
    }
}

pub fn non_negative(file: &Path, field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        field_err(
            file,
            field,
            format!("expected a finite value >= 0, got {v}"),
        )
    }
}

pub fn enum_field<T: serde::de::DeserializeOwned>(
    file: &Path,
    field: &str,
    v: &str,
    allowed: &str,
) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(v.to_string()))
        .or_else(|_| field_err(file, field, format!("expected one of {allowed}, got `{v}`")))
}

pub fn loss_layer(
    file: &Path,
    prefix: &str,
    base: &mut LossConfig,
    raw: &RawLoss,
    only_active: bool,
) -> Result<()> {
    let f = |name: &str| format!("{prefix}.{name}");
    if let Some(v) = raw.ce_weight {
        base.ce_weight = non_negative(file, &f("ce_weight"), v)?;
    }
    // At suite level lambda/mu are defaults; builtin() zeroes inactive terms
    // afterwards. At arm level they apply only to active terms.
    if let Some(v) = raw.lambda {
        let v = non_negative(file, &f("lambda"), v)?;
        if !only_active || base.kl_weight != 0.0 {
            base.kl_weight = v;
        } else {
            return field_err(
                file,
                &f("lambda"),
                "this arm has no KL term (use base = \"two_branch_kl\" or \"ddgsd\")",
            );
        }
    }
    if let Some(v) = raw.mu {
        let v = non_negative(file, &f("mu"), v)?;
        if !only_active || base.mmd_weight != 0.0 {
            base.mmd_weight = v;
        } else {
            return field_err(
                file,
                &f("mu"),
                "this arm has no feature term (use base = \"two_branch_mmd\" or \"ddgsd\")",
            );
        }
    }
    if let Some(v) = raw.temperature {
        base.temperature = positive(file, &f("temperature"), v)?;
    }
    if let Some(v) = raw.t2_factor {
        base.t2_factor = v;
    }
    if let Some(v) = raw.stop_gradient {
        base.stop_gradient = v;
    }
    if let Some(v) = &raw.kl_reduction {
        base.kl_reduction =
            enum_field::<KlReduction>(file, &f("kl_reduction"), v, "batch_mean, element_mean")?;
    }
    if let Some(v) = &raw.mmd {
        base.mmd =
            enum_field::<MmdKind>(file, &f("mmd"), v, "linear, rbf, scalar_mean, mse_logits")?;
    }
    if let Some(v) = &raw.rbf_bandwidths {
        if v.is_empty() || v.iter().any(|b| !(b.is_finite() && *b > 0.0)) {
            return field_err(
                file,
                &f("rbf_bandwidths"),
                "expected a non-empty list of positive numbers",
            );
        }
        base.rbf_bandwidths = v.clone();
    }
    Ok(())
}

/// `[dataset] holdout` (0 or absent: none) and the seed that draws it.
pub fn resolve_holdout(
    file: &Path,
    raw: &RawDataset,
    spec: &DatasetSpec,
) -> Result<Option<HoldoutSpec>> {
    let n = raw.holdout.unwrap_or(0);
    if n == 0 {
        return Ok(None);
    }
    let seed = match spec {
        DatasetSpec::Synthetic(s) => {
            if n >= s.train {
                return field_err(
                    file,
                    "dataset.holdout",
                    format!(
                        "expected fewer than the {} training samples, got {n}",
                        s.train
                    ),
                );
            }
            s.seed
        }
        _ => raw.seed.unwrap_or(0),
    };
    Ok(Some(HoldoutSpec { n, seed }))
}

pub fn resolve_dataset(file: &Path, raw: &RawDataset) -> Result<DatasetSpec> {
    let synthetic_only = [
        ("classes", raw.classes.is_some()),
        ("train", raw.train.is_some()),
        ("test", raw.test.is_some()),
        ("seed", raw.seed.is_some() && raw.holdout.unwrap_or(0) == 0),
        ("noise", raw.noise.is_some()),
    ];
    match raw.name.as_str() {
        "synthetic" => {
            if raw.path.is_some() {
                return field_err(
                    file,
                    "dataset.path",
                    "the synthetic dataset is built in and reads no files",
                );
            }
            let d = SyntheticSpec::default();
            let classes = positive(file, "dataset.classes", raw.classes.unwrap_or(d.classes))?;
            if !(2..=1000).contains(&classes) {
                return field_err(
                    file,
                    "dataset.classes",
                    format!("expected 2..=1000, got {classes}"),
                );
            }
            Ok(DatasetSpec::Synthetic(SyntheticSpec {
                classes,
                train: positive(file, "dataset.train", raw.train.unwrap_or(d.train))?,
                test: positive(file, "dataset.test", raw.test.unwrap_or(d.test))?,
                seed: raw.seed.unwrap_or(d.seed),
                noise: non_negative(file, "dataset.noise", raw.noise.unwrap_or(d.noise))?,
            }))
        }
        "cifar10" | "cifar100" | "imagenet" => {
            if let Some((f, _)) = synthetic_only.iter().find(|(_, set)| *set) {
                return field_err(
                    file,
                    &format!("dataset.{f}"),
                    if *f == "seed" {
                        "a real dataset's `seed` only chooses the holdout: set `holdout` too, or drop `seed`".to_string()
                    } else {
                        format!("only the synthetic dataset takes `{f}`")
                    },
                );
            }
            let Some(path) = raw.path.clone() else {
                return field_err(
                    file,
                    "dataset.path",
                    format!("`{}` needs the path of its archive or folder", raw.name),
                );
            };
            Ok(match raw.name.as_str() {
                "cifar10" => DatasetSpec::Cifar10 { path },
                "cifar100" => DatasetSpec::Cifar100 { path },
                _ => DatasetSpec::Imagenet { path },
            })
        }
        other => field_err(
            file,
            "dataset.name",
            format!("expected one of synthetic, cifar10, cifar100, imagenet, got `{other}`"),
        ),
    }
}
