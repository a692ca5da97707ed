//! Raw suite → resolved suite: every default filled in, presets applied,
//! every field checked. The resolved [`RunConfig`] of each run is what its
//! record stores and what a resumed run is compared against.
use super::arms::{self, ArmConfig, Double};
use super::raw::{RawArch, RawLoss, RawSuite};
use crate::augment::Distortion;
use crate::data::synthetic::SyntheticSpec;
use crate::data::DatasetSpec;
use crate::error::{field_err, parse_toml, read_text};
use crate::loss::{KlReduction, LossConfig, MmdKind};
use crate::model::{self, ArchSpec};
use crate::schedule::{Schedule, WarmupKind};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Threads per run unless the suite or `--threads` says otherwise: a fixed
/// number, not "all cores", because results are bit-identical only at a
/// fixed thread count.
pub const DEFAULT_THREADS: usize = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Effective epochs (doubled for `baseline_2x`).
    pub epochs: u32,
    /// Images per step (each forwarded once per view).
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub schedule: Schedule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    Fp32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `auto`, `cpu`, `cuda`, `cuda:N` as requested.
    pub device: String,
    pub threads: usize,
    /// True when `--threads` replaced the suite's value.
    pub threads_overridden: bool,
    pub precision: Precision,
    pub deterministic: bool,
    /// Checkpoint every this many epochs (and always at the end).
    pub checkpoint_every: u32,
}

/// Everything one run depends on, besides the dataset's bytes and the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub suite: String,
    pub run_id: String,
    pub arch: ArchSpec,
    pub arm: ArmConfig,
    pub seed: u64,
    pub dataset: DatasetSpec,
    pub train: TrainConfig,
    pub runtime: RuntimeConfig,
}

/// Command-line overrides of suite fields.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub threads: Option<usize>,
    pub device: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ResolvedSuite {
    pub name: String,
    pub description: String,
    pub file: PathBuf,
    pub expected: PathBuf,
    pub archs: Vec<ArchSpec>,
    pub arms: Vec<ArmConfig>,
    pub seeds: Vec<u64>,
    pub dataset: DatasetSpec,
    pub runs: Vec<RunConfig>,
}

/// Reads, parses and resolves a suite file.
pub fn load(file: &Path, ov: &Overrides) -> Result<ResolvedSuite> {
    let text = read_text(file)?;
    let raw: RawSuite = parse_toml(file, &text)?;
    resolve(file, raw, ov)
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(
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

fn non_negative(file: &Path, field: &str, v: f64) -> Result<f64> {
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

fn enum_field<T: serde::de::DeserializeOwned>(
    file: &Path,
    field: &str,
    v: &str,
    allowed: &str,
) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(v.to_string()))
        .or_else(|_| field_err(file, field, format!("expected one of {allowed}, got `{v}`")))
}

fn loss_layer(
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

fn resolve_dataset(file: &Path, raw: &super::raw::RawDataset) -> Result<DatasetSpec> {
    let synthetic_only = [
        ("classes", raw.classes.is_some()),
        ("train", raw.train.is_some()),
        ("test", raw.test.is_some()),
        ("seed", raw.seed.is_some()),
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
                    format!("only the synthetic dataset takes `{f}`"),
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

fn resolve(file: &Path, raw: RawSuite, ov: &Overrides) -> Result<ResolvedSuite> {
    let name = raw.name.trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return field_err(
            file,
            "name",
            format!("expected letters, digits, `_` or `-`, got `{}`", raw.name),
        );
    }
    if raw.seeds.is_empty() {
        return field_err(file, "seeds", "expected at least one seed");
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &raw.seeds {
        if !seen.insert(s) {
            return field_err(file, "seeds", format!("seed {s} is listed twice"));
        }
    }
    let dataset = resolve_dataset(file, &raw.dataset)?;

    // Architectures.
    if raw.architectures.is_empty() {
        return field_err(file, "architectures", "expected at least one architecture");
    }
    let mut archs = Vec::new();
    for (i, a) in raw.architectures.iter().enumerate() {
        let spec = match a {
            RawArch::Name(n) => ArchSpec {
                name: n.clone(),
                width: None,
            },
            RawArch::Spec(s) => s.clone(),
        };
        let field = format!("architectures[{i}]");
        let info = match model::lookup(&spec.name) {
            Ok(info) => info,
            Err(e) => return field_err(file, &field, e.to_string()),
        };
        if spec.width.is_some() && !info.takes_width {
            return field_err(
                file,
                &format!("{field}.width"),
                format!(
                    "`{}` has no width parameter (only the CIFAR ResNet-(6n+2) family takes one)",
                    spec.name
                ),
            );
        }
        let input_ok = match &dataset {
            DatasetSpec::Imagenet { .. } => info.input == "imagenet",
            _ => info.input == "cifar",
        };
        if !input_ok {
            return field_err(
                file,
                &field,
                format!(
                    "`{}` is an architecture for {} inputs, the dataset is {}",
                    spec.name,
                    info.input,
                    dataset.name()
                ),
            );
        }
        if let Some(w) = spec.width {
            if w < 4 || w % 4 != 0 {
                return field_err(
                    file,
                    &format!("{field}.width"),
                    format!("expected a multiple of 4, at least 4, got {w}"),
                );
            }
        }
        if archs.iter().any(|x: &ArchSpec| x.id() == spec.id()) {
            return field_err(file, &field, format!("`{}` is listed twice", spec.id()));
        }
        archs.push(spec);
    }

    // Schedule.
    let t = &raw.train;
    let epochs = positive(file, "train.epochs", t.epochs.unwrap_or(200))?;
    let milestones = t.milestones.clone().unwrap_or_else(|| vec![100, 150]);
    if milestones.windows(2).any(|w| w[0] >= w[1]) {
        return field_err(
            file,
            "train.milestones",
            "expected strictly increasing epochs",
        );
    }
    let warmup_kind = match t.warmup_kind.as_deref() {
        None => WarmupKind::Constant,
        Some(k) => enum_field(file, "train.warmup_kind", k, "constant, linear")?,
    };
    let lr = positive(file, "train.lr", t.lr.unwrap_or(0.1))?;
    let schedule = Schedule {
        lr,
        milestones,
        gamma: positive(file, "train.gamma", t.gamma.unwrap_or(0.1))?,
        warmup_epochs: t.warmup_epochs.unwrap_or(0),
        warmup_lr: non_negative(file, "train.warmup_lr", t.warmup_lr.unwrap_or(0.01))?,
        warmup_kind,
    };
    let momentum = non_negative(file, "train.momentum", t.momentum.unwrap_or(0.9))?;
    if momentum >= 1.0 {
        return field_err(
            file,
            "train.momentum",
            format!("expected a value in [0, 1), got {momentum}"),
        );
    }
    let train = TrainConfig {
        epochs,
        batch_size: positive(file, "train.batch_size", t.batch_size.unwrap_or(128))?,
        eval_batch_size: positive(
            file,
            "train.eval_batch_size",
            t.eval_batch_size.unwrap_or(500),
        )?,
        momentum,
        nesterov: t.nesterov.unwrap_or(true),
        weight_decay: non_negative(file, "train.weight_decay", t.weight_decay.unwrap_or(5e-4))?,
        schedule,
    };
    if train.nesterov && train.momentum == 0.0 {
        return field_err(
            file,
            "train.nesterov",
            "Nesterov momentum needs momentum > 0",
        );
    }

    // Runtime.
    let r = &raw.runtime;
    let threads = match ov.threads {
        Some(n) => positive(file, "--threads", n)?,
        None => positive(
            file,
            "runtime.threads",
            r.threads.unwrap_or(DEFAULT_THREADS),
        )?,
    };
    let device = ov
        .device
        .clone()
        .or_else(|| r.device.clone())
        .unwrap_or_else(|| "auto".into());
    if !(device == "auto"
        || device == "cpu"
        || device == "cuda"
        || device
            .strip_prefix("cuda:")
            .is_some_and(|n| n.parse::<usize>().is_ok()))
    {
        return field_err(
            file,
            "runtime.device",
            format!("expected auto, cpu, cuda or cuda:N, got `{device}`"),
        );
    }
    let precision = match r.precision.as_deref().unwrap_or("fp32") {
        "fp32" => Precision::Fp32,
        other => {
            return field_err(
                file,
                "runtime.precision",
                format!("expected fp32 (the only precision implemented), got `{other}`"),
            )
        }
    };
    let runtime = RuntimeConfig {
        device,
        threads,
        threads_overridden: ov.threads.is_some(),
        precision,
        deterministic: r.deterministic.unwrap_or(true),
        checkpoint_every: positive(
            file,
            "runtime.checkpoint_every",
            r.checkpoint_every.unwrap_or(1),
        )?,
    };

    // Loss defaults, then arms.
    let mut loss = LossConfig::default();
    loss_layer(file, "loss", &mut loss, &raw.loss, false)?;
    for n in raw.arm_defs.keys() {
        if !raw.arms.contains(n) {
            return field_err(
                file,
                &format!("arm.{n}"),
                "defined but not listed in `arms`",
            );
        }
    }
    if raw.arms.is_empty() {
        return field_err(file, "arms", "expected at least one arm");
    }
    let mut arms_out: Vec<ArmConfig> = Vec::new();
    for (i, name) in raw.arms.iter().enumerate() {
        let field = format!("arms[{i}]");
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
            return field_err(
                file,
                &field,
                format!("arm names are letters, digits and `_`, got `{name}`"),
            );
        }
        if arms_out.iter().any(|a| &a.name == name) {
            return field_err(file, &field, format!("`{name}` is listed twice"));
        }
        let def = raw.arm_defs.get(name).cloned().unwrap_or_default();
        let p = format!("arm.{name}");
        let base = def.base.clone().unwrap_or_else(|| name.clone());
        let Some(mut arm) = arms::builtin(&base, &loss) else {
            let what = if def.base.is_some() {
                format!("{p}.base")
            } else {
                field.clone()
            };
            return field_err(file, &what, format!("unknown arm `{base}`: expected one of {} (or define [arm.{name}] with a `base`)", arms::BUILTIN_ARMS.join(", ")));
        };
        arm.name = name.clone();
        if let Some(pr) = &def.preset {
            arms::apply_preset(&mut arm, pr)
                .or_else(|e| field_err(file, &format!("{p}.preset"), e))?;
        }
        loss_layer(file, &p, &mut arm.loss, &def.loss(), true)?;
        if let Some(f) = &def.forward {
            arm.forward = enum_field(file, &format!("{p}.forward"), f, "joint, separate")?;
        }
        if let Some(ds) = &def.distortions {
            if ds.len() != arm.views as usize {
                return field_err(
                    file,
                    &format!("{p}.distortions"),
                    format!(
                        "expected {} entries (one per view), got {}",
                        arm.views,
                        ds.len()
                    ),
                );
            }
            arm.distortions = ds
                .iter()
                .map(|d| {
                    enum_field::<Distortion>(
                        file,
                        &format!("{p}.distortions"),
                        d,
                        "crop_flip, flip_only, crop_only, none",
                    )
                })
                .collect::<Result<_>>()?;
        }
        if let Some(d) = &def.double {
            if arm.base != "baseline_2x" {
                return field_err(
                    file,
                    &format!("{p}.double"),
                    "only a baseline_2x arm doubles its steps or batch",
                );
            }
            arm.double = Some(enum_field::<Double>(
                file,
                &format!("{p}.double"),
                d,
                "steps, batch",
            )?);
        }
        arms_out.push(arm);
    }

    let suite_dir = file.parent().unwrap_or(Path::new(""));
    let expected = match &raw.expected {
        Some(e) => suite_dir.join(e),
        // `<suites>/../expected/<name>.toml`, written without the `..`
        // where the suite's folder has a parent in the path.
        None => match suite_dir.parent() {
            Some(up) if suite_dir.file_name().is_some() => up.join("expected"),
            _ => suite_dir.join("..").join("expected"),
        }
        .join(format!("{name}.toml")),
    };

    let mut runs = Vec::new();
    for arch in &archs {
        for arm in &arms_out {
            for &seed in &raw.seeds {
                runs.push(RunConfig {
                    suite: name.clone(),
                    run_id: run_id(arch, &arm.name, seed),
                    arch: arch.clone(),
                    arm: arm.clone(),
                    seed,
                    dataset: dataset.clone(),
                    train: effective_train(&train, arm),
                    runtime: runtime.clone(),
                });
            }
        }
    }
    Ok(ResolvedSuite {
        name,
        description: raw.description.unwrap_or_default(),
        file: file.to_path_buf(),
        expected,
        archs,
        arms: arms_out,
        seeds: raw.seeds,
        dataset,
        runs,
    })
}

/// `<arch id>__<arm>__s<seed>`: the run's directory name and its key in
/// expected files.
pub fn run_id(arch: &ArchSpec, arm: &str, seed: u64) -> String {
    format!("{}__{}__s{}", arch.id(), arm, seed)
}

/// The schedule an arm really runs: `baseline_2x` doubles epochs (and with
/// `double = "batch"` the batch too), scaling milestones and warm-up.
fn effective_train(t: &TrainConfig, arm: &ArmConfig) -> TrainConfig {
    let mut t = t.clone();
    if let Some(d) = arm.double {
        t.epochs *= 2;
        t.schedule.milestones = t.schedule.milestones.iter().map(|m| m * 2).collect();
        t.schedule.warmup_epochs *= 2;
        if d == Double::Batch {
            t.batch_size *= 2;
        }
    }
    t
}
