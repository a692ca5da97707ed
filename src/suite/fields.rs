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

/// A positive, finite number (`inf` passes `> 0` and fails hours later).
pub fn positive_finite(file: &Path, field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        field_err(
            file,
            field,
            format!("expected a positive finite value, got {v}"),
        )
    }
}

/// Milestones and warm-up that the run reaches: a milestone at epoch 0
/// scales the whole run's rate, one at or after `epochs` never applies, a
/// warm-up as long as the run leaves `lr` unused. `defaulted`: the
/// milestones are the default [100, 150] (the 200-epoch recipe).
pub fn check_schedule(
    file: &Path,
    epochs: u32,
    milestones: &[u32],
    defaulted: bool,
    warmup_epochs: u32,
) -> Result<()> {
    let given = if defaulted {
        " (the default [100, 150] of the 200-epoch recipe: set train.milestones, [] for a constant rate)"
    } else {
        ""
    };
    if let Some(&m) = milestones.iter().find(|&&m| m == 0 || m >= epochs) {
        let why = if m == 0 {
            "a milestone at epoch 0 scales the rate of the whole run (set train.lr instead)"
                .to_string()
        } else {
            format!(
                "milestone {m} is not before the last epoch ({epochs} epochs): it never applies"
            )
        };
        return field_err(file, "train.milestones", format!("{why}{given}"));
    }
    if warmup_epochs >= epochs && warmup_epochs > 0 {
        return field_err(
            file,
            "train.warmup_epochs",
            format!(
                "a warm-up of {warmup_epochs} epochs in a run of {epochs} leaves train.lr unused"
            ),
        );
    }
    Ok(())
}

/// A step's batch must fit the training split: a larger one would make
/// every step one partial batch, while the record states the batch size.
pub fn check_batch(file: &Path, run: &str, batch: usize, train_len: usize) -> Result<()> {
    if batch > train_len {
        return field_err(
            file,
            "train.batch_size",
            format!(
                "run {run} takes {batch} images per step, but the training split has {train_len}"
            ),
        );
    }
    Ok(())
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
        base.temperature = positive_finite(file, &f("temperature"), v)?;
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
