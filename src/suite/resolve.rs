//! Raw suite → resolved suite: every default filled in, presets applied,
//! every field checked (the checks of single fields are in `fields`). The
//! resolved [`RunConfig`] of each run is what its record stores and what a
//! resumed run is compared against.
use super::fields::{
    check_batch, check_schedule, enum_field, loss_layer, non_negative, positive, positive_finite,
    resolve_dataset, resolve_holdout,
};
use super::raw::{RawArch, RawSuite};
use super::teacher;
use crate::data::augment::Distortion;
use crate::data::DatasetSpec;
use crate::method::arms::{self, ArmConfig, Double};
use crate::method::config::MethodConfig;
use crate::method::loss::LossConfig;
use crate::method::presets;
use crate::model::{self, ArchSpec};
use crate::optim::lr_schedule::{Schedule, WarmupKind};
use crate::util::error::{field_err, parse_toml, read_text};
use anyhow::Result;
use std::path::Path;

pub use super::config::{
    effective_train, run_id, Overrides, ResolvedSuite, RunConfig, TrainConfig, DEFAULT_ECE_BINS,
};
use crate::platform::runtime::{
    BackendChoice, DataPlacement, MemoryFormat, Precision, RuntimeConfig,
    DEFAULT_COLLECTIVE_TIMEOUT, DEFAULT_PREFETCH, DEFAULT_THREADS,
};

/// Reads, parses and resolves a suite file.
pub fn load(file: &Path, ov: &Overrides) -> Result<ResolvedSuite> {
    let text = read_text(file)?;
    let raw: RawSuite = parse_toml(file, &text)?;
    resolve(file, raw, ov)
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
    let holdout = resolve_holdout(file, &raw.dataset, &dataset)?;

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
        if let Err(e) = model::check_width(&spec, &info) {
            return field_err(file, &format!("{field}.width"), e);
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
    let warmup_epochs = t.warmup_epochs.unwrap_or(0);
    check_schedule(
        file,
        epochs,
        &milestones,
        t.milestones.is_none(),
        warmup_epochs,
    )?;
    let warmup_kind = match t.warmup_kind.as_deref() {
        None => WarmupKind::Constant,
        Some(k) => enum_field(file, "train.warmup_kind", k, "constant, linear, ramp")?,
    };
    let lr = positive_finite(file, "train.lr", t.lr.unwrap_or(0.1))?;
    let schedule = Schedule {
        lr,
        milestones,
        gamma: positive_finite(file, "train.gamma", t.gamma.unwrap_or(0.1))?,
        warmup_epochs,
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
        ece_bins: match t.ece_bins {
            None => DEFAULT_ECE_BINS,
            Some(b) if (1..=1000).contains(&b) => b,
            Some(b) => {
                return field_err(
                    file,
                    "train.ece_bins",
                    format!("expected 1..=1000 bins, got {b}"),
                )
            }
        },
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
        Some(0) => anyhow::bail!("--threads 0: expected at least 1"),
        Some(n) => n,
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
        "bf16" => Precision::Bf16,
        other => {
            return field_err(
                file,
                "runtime.precision",
                format!("expected fp32 or bf16, got `{other}`"),
            )
        }
    };
    let memory_format = match r.memory_format.as_deref().unwrap_or("contiguous") {
        "contiguous" => MemoryFormat::Contiguous,
        "channels_last" => MemoryFormat::ChannelsLast,
        other => {
            return field_err(
                file,
                "runtime.memory_format",
                format!("expected contiguous or channels_last, got `{other}`"),
            )
        }
    };
    let data = match r.data.as_deref().unwrap_or("device") {
        "host" => DataPlacement::Host,
        "device" => DataPlacement::Device,
        other => {
            return field_err(
                file,
                "runtime.data",
                format!("expected host or device, got `{other}`"),
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
        data,
        memory_format,
        prefetch: positive(
            file,
            "runtime.prefetch",
            r.prefetch.unwrap_or(DEFAULT_PREFETCH),
        )?,
        loader_threads: r.loader_threads.unwrap_or(0),
        world_size: 1,
        backend: BackendChoice::Auto,
        collective_timeout: DEFAULT_COLLECTIVE_TIMEOUT,
        tensorboard: r.tensorboard.unwrap_or(true),
    };
    let runtime = resolve_data_parallel(file, r, ov, runtime)?;

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
            return field_err(file, &what, format!("unknown arm `{base}`: expected one of {} (or define [arm.{name}] with a `base`)", arms::builtin_names().join(", ")));
        };
        arm.name = name.clone();
        if let Some(pr) = &def.preset {
            presets::apply_preset(&mut arm, pr)
                .or_else(|e| field_err(file, &format!("{p}.preset"), e))?;
        }
        if let MethodConfig::Ddgsd(l) = &mut arm.method {
            let raw_loss = def.loss().or_else(|e| field_err(file, &p, e))?;
            loss_layer(file, &p, l, &raw_loss, true)?;
        } else if !def.fields.is_empty() {
            arm.method = arm
                .method
                .with_fields(def.fields.clone())
                .or_else(|(f, e)| {
                    let what = f.map_or_else(|| p.clone(), |f| format!("{p}.{f}"));
                    field_err(file, &what, format!("{e} (method {base})"))
                })?;
        }
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
        if def.teacher.is_some() && !crate::method::plan(&arm).teacher {
            return field_err(
                file,
                &format!("{p}.teacher"),
                format!(
                    "method {} distils from no teacher (only tf_kd_self does)",
                    arm.method.name()
                ),
            );
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

    if runtime.world_size > 1 {
        for arm in &arms_out {
            if crate::method::plan(arm).sample_memory {
                let field = if ov.world_size.is_some() {
                    "--ranks"
                } else {
                    "runtime.world_size"
                };
                return field_err(
                    file,
                    field,
                    format!(
                        "arm `{}` keeps a record of every training sample from earlier epochs, which a data-parallel run (world size {}) would split over its ranks: train it with one rank",
                        arm.name, runtime.world_size
                    ),
                );
            }
            let b = effective_train(&train, arm).batch_size;
            if b % runtime.world_size != 0 {
                return field_err(
                    file,
                    "train.batch_size",
                    format!(
                        "the global batch of arm `{}` ({b} images) does not divide into runtime.world_size = {} equal shares",
                        arm.name, runtime.world_size
                    ),
                );
            }
        }
    }
    // Auxiliary heads attach to the stages of a ResNet only.
    for arm in arms_out.iter().filter(|a| crate::method::plan(a).heads) {
        if let Some((i, a)) = archs
            .iter()
            .enumerate()
            .find(|(_, a)| !model::has_stages(&a.name))
        {
            return field_err(
                file,
                &format!("architectures[{i}]"),
                format!(
                    "arm `{}` ({}) puts auxiliary heads after the network's stages; `{}` has no such stages (every ResNet has: resnet<6n+2>, resnet18, resnet50, preact_resnet18, imagenet_resnet18, imagenet_resnet50)",
                    arm.name,
                    arm.method.name(),
                    a.id()
                ),
            );
        }
    }
    // Teachers, and every run after the runs it needs.
    let (teacher_of, ordered) = teacher::of_arms(file, &raw.arm_defs, &arms_out, &archs)?;
    let mut runs = Vec::new();
    for arch in &archs {
        for arm_name in &ordered {
            let arm = arms_out
                .iter()
                .find(|a| &a.name == arm_name)
                .expect("an arm");
            for &seed in &raw.seeds {
                let teacher = teacher_of.get(&arm.name).map(|t| t.of_run(arch, seed));
                runs.push(RunConfig {
                    suite: name.clone(),
                    run_id: run_id(arch, &arm.name, seed),
                    arch: arch.clone(),
                    arm: arm.clone(),
                    seed,
                    dataset: dataset.clone(),
                    holdout,
                    train: effective_train(&train, arm),
                    runtime: runtime.clone(),
                    teacher,
                });
            }
        }
    }
    let suite = ResolvedSuite {
        name,
        description: raw.description.unwrap_or_default(),
        file: file.to_path_buf(),
        expected,
        archs,
        arms: arms_out,
        seeds: raw.seeds,
        dataset,
        runs,
    };
    if let DatasetSpec::Synthetic(sy) = &suite.dataset {
        check_against_data(&suite, sy.train)?;
    }
    Ok(suite)
}

/// Checks the suite against its data, once its training split's size is
/// known (synthetic: when resolved; files: when opened).
pub fn check_against_data(suite: &ResolvedSuite, train_len: usize) -> Result<()> {
    for r in &suite.runs {
        check_batch(&suite.file, &r.run_id, r.train.batch_size, train_len)?;
    }
    Ok(())
}

/// `world_size` (or the override of `--ranks` / the launcher), `backend`,
/// `collective_timeout`, and `sync_bn` (refused: see README "Scale out").
fn resolve_data_parallel(
    file: &Path,
    r: &super::raw::RawRuntime,
    ov: &Overrides,
    mut rt: RuntimeConfig,
) -> Result<RuntimeConfig> {
    rt.world_size = match ov.world_size {
        Some(n) => positive(file, "--ranks", n)?,
        None => positive(file, "runtime.world_size", r.world_size.unwrap_or(1))?,
    };
    if let Some(b) = &r.backend {
        rt.backend = enum_field(file, "runtime.backend", b, "auto, gloo, nccl")?;
    }
    let t = r.collective_timeout.unwrap_or(DEFAULT_COLLECTIVE_TIMEOUT);
    if !(t.is_finite() && t > 0.0) {
        return field_err(
            file,
            "runtime.collective_timeout",
            format!("expected a positive number of seconds, got {t}"),
        );
    }
    rt.collective_timeout = t;
    if r.sync_bn == Some(true) {
        return field_err(
            file,
            "runtime.sync_bn",
            "synchronised batch norm is not available: libtorch 2.11's batch-norm \
             stat-gathering ops (batch_norm_stats, batch_norm_gather_stats_with_counts, \
             batch_norm_backward_reduce, batch_norm_elemt) have CUDA kernels only, so batch norm \
             is per rank (as torchvision's reference trains without --sync-bn)",
        );
    }
    Ok(rt)
}
