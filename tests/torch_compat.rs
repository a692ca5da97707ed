//! ddgsd-bench model files load into PyTorch with `load_state_dict(strict=True)`
//! and compute the same logits and features there: torchvision's resnet18,
//! resnet50 and alexnet, and the CIFAR networks as written independently in
//! tests/python/cifar_models.py; and BYOT exports: the plain network
//! (strict) beside its heads' file, which loads with `strict=True` into a
//! transcription of the official heads and gives the same head logits.
//!
//! Needs `.venv/bin/python` with torch, torchvision and safetensors; without
//! them the test prints "SKIP: ..." and passes.
use ddgsd_bench::model::checkpoint;
use ddgsd_bench::model::{self, export, heads, ArchSpec};
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{nn, Device, Kind, Tensor};

/// Max absolute difference allowed in fp32, eval mode.
const TOL: f64 = 1e-4;

fn python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    p.exists().then_some(p)
}

/// Builds `arch` from a fixed seed, gives every BN non-trivial parameters
/// and running statistics (so a swapped or misplaced BN shows), and writes
/// its state dict and an eval-mode input/logits/features triple to `dir`.
fn export_one(dir: &Path, arch: &str, classes: i64, batch: i64, side: i64) {
    tch::manual_seed(20_190_127);
    let byot = arch.strip_prefix("byot_");
    let vs = nn::VarStore::new(Device::Cpu);
    let net = model::build(
        &ArchSpec {
            name: byot.unwrap_or(arch).into(),
            width: None,
        },
        &vs.root(),
        classes,
    )
    .unwrap();
    // A BYOT run's network: the auxiliary heads beside it, under `heads.`.
    let heads = byot.map(|_| heads::Heads::of(&vs.root(), net.as_ref(), classes).unwrap());
    tch::no_grad(|| {
        let vars = vs.variables();
        for (name, t) in &vars {
            let (lo, hi) =
                if name.ends_with("running_var") || (name.ends_with(".weight") && t.dim() == 1) {
                    (0.5, 1.5)
                } else if name.ends_with("running_mean")
                    || (name.ends_with(".bias")
                        && vars.contains_key(&name.replace(".bias", ".running_mean")))
                {
                    (-0.2, 0.2)
                } else {
                    continue;
                };
            let _ = t.shallow_clone().uniform_(lo, hi);
        }
    });
    let x = Tensor::randn([batch, 3, side, side], (Kind::Float, Device::Cpu));
    let (z, h) = tch::no_grad(|| net.forward(&x, false));
    // What a run writes: the plain network, and the heads in a file of their own.
    let (plain, head_tensors) = heads::split(export::state_dict(&vs, 7));
    checkpoint::write_safetensors(&dir.join(format!("{arch}.model.safetensors")), &plain).unwrap();
    let mut io = vec![
        ("input".to_string(), x.shallow_clone()),
        ("logits".to_string(), z),
        ("features".to_string(), h),
    ];
    if let Some(hd) = &heads {
        assert!(plain.iter().all(|(n, _)| !n.starts_with("heads")));
        checkpoint::write_safetensors(
            &dir.join(format!("{arch}.heads.safetensors")),
            &head_tensors,
        )
        .unwrap();
        let st = tch::no_grad(|| net.forward_stages(&x, false)).unwrap();
        for (i, (zi, _)) in tch::no_grad(|| hd.forward(&st.stages, false))
            .into_iter()
            .enumerate()
        {
            io.push((format!("head{}_logits", i + 1), zi));
        }
    }
    checkpoint::write_safetensors(&dir.join(format!("{arch}.io.safetensors")), &io).unwrap();
}

/// A real BYOT run (the binary, 1 epoch of synthetic data, ResNet-8): its
/// model.safetensors and heads.safetensors as `byot_resnet8`, with the
/// logits of both files loaded back into our network and heads.
fn export_byot_run(dir: &Path) {
    let work = tempfile::tempdir().unwrap();
    let suite = work.path().join("tb.toml");
    std::fs::write(
        &suite,
        "name = \"tb\"\nseeds = [0]\narchitectures = [\"resnet8\"]\narms = [\"byot\"]\n\
         [dataset]\nname = \"synthetic\"\nclasses = 4\ntrain = 64\ntest = 16\n\
         [train]\nepochs = 1\nbatch_size = 32\nmilestones = []\n[runtime]\ndevice = \"cpu\"\nthreads = 2\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ddgsd-bench"))
        .arg("run")
        .arg(&suite)
        .args(["--no-check", "--out"])
        .arg(work.path().join("r"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = work.path().join("r/tb/resnet8__byot__s0");
    for f in ["model", "heads"] {
        std::fs::copy(
            run.join(format!("{f}.safetensors")),
            dir.join(format!("byot_resnet8.{f}.safetensors")),
        )
        .unwrap();
    }
    let mut vs = nn::VarStore::new(Device::Cpu);
    let spec = ArchSpec {
        name: "resnet8".into(),
        width: None,
    };
    let net = model::build(&spec, &vs.root(), 4).unwrap();
    let hd = heads::Heads::of(&vs.root(), net.as_ref(), 4).unwrap();
    let mut all = checkpoint::read_safetensors(&run.join("model.safetensors")).unwrap();
    all.extend(heads::prefixed(
        checkpoint::read_safetensors(&run.join("heads.safetensors")).unwrap(),
    ));
    checkpoint::load_into(&mut vs, &all, &run).unwrap();
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let (z, h) = tch::no_grad(|| net.forward(&x, false));
    let st = tch::no_grad(|| net.forward_stages(&x, false)).unwrap();
    let mut io = vec![
        ("input".to_string(), x.shallow_clone()),
        ("logits".to_string(), z),
        ("features".to_string(), h),
    ];
    for (i, (zi, _)) in tch::no_grad(|| hd.forward(&st.stages, false))
        .into_iter()
        .enumerate()
    {
        io.push((format!("head{}_logits", i + 1), zi));
    }
    checkpoint::write_safetensors(&dir.join("byot_resnet8.io.safetensors"), &io).unwrap();
}

#[test]
fn pytorch_loads_every_checkpoint_and_agrees() {
    let Some(py) = python() else {
        println!("SKIP: no .venv/bin/python next to Cargo.toml");
        return;
    };
    let probe = Command::new(&py)
        .args(["-c", "import torch, torchvision, safetensors, numpy"])
        .output()
        .unwrap();
    if !probe.status.success() {
        println!(
            "SKIP: .venv/bin/python cannot import torch, torchvision, safetensors, numpy: {}",
            String::from_utf8_lossy(&probe.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // (architecture, classes, batch, input side)
    let models: [(&str, i64, i64, i64); 12] = [
        // BYOT exports: the plain network and the official heads.
        ("byot_resnet18", 100, 2, 32),
        ("byot_resnet32", 10, 2, 32),
        ("byot_imagenet_resnet18", 1000, 2, 224),
        ("resnet32", 10, 4, 32),
        ("resnet18", 100, 4, 32),
        ("resnet50", 100, 2, 32),
        ("preact_resnet18", 100, 4, 32),
        ("wrn16_4", 100, 4, 32),
        ("densenet_bc100", 100, 2, 32),
        ("imagenet_resnet18", 1000, 2, 224),
        ("imagenet_resnet50", 1000, 2, 224),
        ("alexnet", 1000, 2, 224),
    ];
    let mut args = vec![Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python/compare_logits.py")
        .display()
        .to_string()];
    args.push(dir.path().display().to_string());
    args.push(TOL.to_string());
    for &(arch, classes, batch, side) in &models {
        export_one(dir.path(), arch, classes, batch, side);
        args.push(format!("{arch}:{classes}"));
    }
    export_byot_run(dir.path());
    args.push("byot_resnet8:4".into());
    let out = Command::new(&py).args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if out.status.code() == Some(3) {
        println!("SKIP: {}", stdout.lines().next().unwrap_or(""));
        return;
    }
    assert!(
        out.status.success(),
        "PyTorch disagrees:\n{stdout}\n{stderr}"
    );
    for arch in models.iter().map(|m| m.0).chain(["byot_resnet8"]) {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("RESULT {arch} "))),
            "no result for {arch}:\n{stdout}\n{stderr}"
        );
    }
}
