//! Every method's loss against its official arithmetic in PyTorch
//! (tests/python/selfkd_losses.py, a transcription of each official
//! implementation): the same logits, features, labels, memory and indices
//! go through both, and every logged term, the total, the gradient of the
//! total with respect to the logits and PS-KD's updated memory rows must
//! agree to a relative 1e-5 (torchdistill's tolerance for its loss tests).
//! The cases cover the official defaults and fields switched away from
//! them, so a field that is read wrongly shows too.
//!
//! Needs `.venv/bin/python` with torch and safetensors; without them the
//! test prints "SKIP: ..." and passes.
use ddgsd_bench::method::arms::{self, ArmConfig};
use ddgsd_bench::method::loss::LossConfig;
use ddgsd_bench::method::presets::apply_preset;
use ddgsd_bench::method::{self, MethodEnv, Outputs, StepData};
use ddgsd_bench::model::checkpoint;
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Kind, Tensor};

const RTOL: f64 = 1e-5;

fn python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    p.exists().then_some(p)
}

struct Case {
    name: &'static str,
    /// The built-in arm.
    base: &'static str,
    /// `[arm.NAME]` fields in TOML (method constants) or a preset.
    fields: &'static str,
    preset: Option<&'static str>,
    /// The constants as the Python side reads them.
    official: serde_json::Value,
    classes: i64,
    batch: i64,
    epoch: u32,
    epochs: u32,
    train_len: usize,
}

fn cases() -> Vec<Case> {
    use serde_json::json;
    let c = |name, base, fields, official, classes, batch| Case {
        name,
        base,
        fields,
        preset: None,
        official,
        classes,
        batch,
        epoch: 0,
        epochs: 1,
        train_len: 0,
    };
    let tf = |alpha: f64, t: f64, a: f64, m: f64, red: &str, st: bool| {
        json!({"method": "tf_kd_reg", "alpha": alpha, "temperature": t, "correct_prob": a,
               "multiplier": m, "kl_reduction": red, "student_temperature": st})
    };
    let ps = |name, epoch, epochs, alpha: f64| Case {
        name,
        base: "ps_kd",
        fields: if alpha == 0.8 { "" } else { "alpha_T = 0.3" },
        preset: None,
        official: json!({"method": "ps_kd", "alpha_T": alpha, "epoch": epoch, "epochs": epochs}),
        classes: 10,
        batch: 16,
        epoch,
        epochs,
        train_len: 40,
    };
    vec![
        c(
            "cs_kd_default",
            "cs_kd",
            "",
            json!({"method": "cs_kd", "temperature": 4.0, "lambda": 1.0}),
            100,
            32,
        ),
        c(
            "cs_kd_t3_l2",
            "cs_kd",
            "temperature = 3.0\nlambda = 2.0",
            json!({"method": "cs_kd", "temperature": 3.0, "lambda": 2.0}),
            10,
            16,
        ),
        ps("ps_kd_epoch0", 0, 10, 0.8),
        ps("ps_kd_epoch5", 5, 10, 0.8),
        ps("ps_kd_last_alpha03", 9, 10, 0.3),
        c(
            "tf_kd_reg_official_k100",
            "tf_kd_reg",
            "",
            tf(0.1, 20.0, 0.99, 100.0, "element_mean", false),
            100,
            32,
        ),
        c(
            "tf_kd_reg_official_k10",
            "tf_kd_reg",
            "",
            tf(0.1, 20.0, 0.99, 100.0, "element_mean", false),
            10,
            16,
        ),
        c(
            "tf_kd_reg_variants",
            "tf_kd_reg",
            "alpha = 0.3\ntemperature = 4.0\ncorrect_prob = 0.9\nmultiplier = 1.0\nkl_reduction = \"batch_mean\"\nstudent_temperature = true",
            tf(0.3, 4.0, 0.9, 1.0, "batch_mean", true),
            10,
            16,
        ),
        c(
            "ls_uniform",
            "label_smoothing",
            "",
            json!({"method": "label_smoothing", "epsilon": 0.1, "smoothing": "uniform"}),
            100,
            32,
        ),
        c(
            "ls_others",
            "label_smoothing",
            "smoothing = \"others\"",
            json!({"method": "label_smoothing", "epsilon": 0.1, "smoothing": "others"}),
            100,
            32,
        ),
        c(
            "ls_others_eps02",
            "label_smoothing",
            "epsilon = 0.2\nsmoothing = \"others\"",
            json!({"method": "label_smoothing", "epsilon": 0.2, "smoothing": "others"}),
            10,
            16,
        ),
        c(
            "tf_kd_self_official",
            "tf_kd_self",
            "",
            json!({"method": "tf_kd_self", "alpha": 0.95, "temperature": 6.0, "multiplier": 50.0, "kl_reduction": "element_mean"}),
            100,
            32,
        ),
        c(
            "tf_kd_self_batchmean",
            "tf_kd_self",
            "alpha = 0.5\ntemperature = 4.0\nmultiplier = 1.0\nkl_reduction = \"batch_mean\"",
            json!({"method": "tf_kd_self", "alpha": 0.5, "temperature": 4.0, "multiplier": 1.0, "kl_reduction": "batch_mean"}),
            10,
            16,
        ),
        c(
            "byot_official",
            "byot",
            "",
            json!({"method": "byot", "alpha": 0.1, "temperature": 3.0, "beta": 1e-6, "kd": "soft_ce", "hint": "masked_sum"}),
            100,
            32,
        ),
        c(
            "byot_variants",
            "byot",
            "alpha = 0.3\ntemperature = 4.0\nbeta = 0.05\nkd = \"kl\"\nhint = \"mse_mean\"",
            json!({"method": "byot", "alpha": 0.3, "temperature": 4.0, "beta": 0.05, "kd": "kl", "hint": "mse_mean"}),
            10,
            16,
        ),
        Case {
            preset: Some("selfkdlib"),
            ..c(
                "ddgsd_selfkdlib",
                "ddgsd",
                "",
                json!({"method": "ddgsd", "temperature": 4.0}),
                100,
                32,
            )
        },
    ]
}

fn arm_of(c: &Case) -> ArmConfig {
    let mut arm = arms::builtin(c.base, &LossConfig::default()).unwrap();
    if let Some(p) = c.preset {
        apply_preset(&mut arm, p).unwrap();
    }
    if !c.fields.is_empty() {
        arm.method = arm
            .method
            .with_fields(toml::from_str(c.fields).unwrap())
            .unwrap();
    }
    arm
}

/// Our side of one case: the inputs (for Python) and our results.
struct Ours {
    inputs: Vec<(String, Tensor)>,
    terms: Vec<(&'static str, f64)>,
    total: f64,
    grad: Tensor,
    memory: Option<Tensor>,
}

fn ours(c: &Case) -> Ours {
    let arm = arm_of(c);
    let mut m = method::build(
        &arm,
        &MethodEnv {
            classes: c.classes,
            train_len: c.train_len,
            epochs: c.epochs,
            device: Device::Cpu,
        },
    )
    .unwrap();
    let (b, k) = (c.batch, c.classes);
    let opt = (Kind::Float, Device::Cpu);
    let views = m.plan().views.len() as i64;
    let y = Tensor::randint(k, [b], (Kind::Int64, Device::Cpu));
    let z = (Tensor::randn([views * b, k], opt) * 3.0).set_requires_grad(true);
    let h = Tensor::randn([views * b, 8], opt).abs();
    let mut inputs = vec![("y".to_string(), y.shallow_clone())];
    let mut memory = None;
    let samples = if c.train_len > 0 {
        let idx = Tensor::randperm(c.train_len as i64, (Kind::Int64, Device::Cpu)).narrow(0, 0, b);
        let mem = (Tensor::randn([c.train_len as i64, k], opt) * 2.0).softmax(1, Kind::Float);
        m.load_state(&[("ps_kd.memory".to_string(), mem.copy())])
            .unwrap();
        inputs.push(("memory".into(), mem));
        inputs.push(("idx".into(), idx.shallow_clone()));
        idx
    } else {
        Tensor::arange(b, (Kind::Int64, Device::Cpu))
    };
    m.begin_epoch(c.epoch);
    let plan = m.plan().clone();
    // The outputs as the plan's passes return them; the Python side gets
    // them as the official code sees them.
    let mut outputs: Vec<Outputs> = plan
        .passes
        .iter()
        .map(|p| Outputs {
            logits: z.narrow(0, p.first as i64 * b, p.count as i64 * b),
            features: h.narrow(0, p.first as i64 * b, p.count as i64 * b),
            heads: Vec::new(),
        })
        .collect();
    // BYOT: three auxiliary heads (logits with gradient; pooled ReLU
    // features, some exactly 0 so that the official mask matters).
    let head_logits: Vec<Tensor> = (0..if plan.heads { 3 } else { 0 })
        .map(|_| (Tensor::randn([b, k], opt) * 2.0).set_requires_grad(true))
        .collect();
    for (i, zi) in head_logits.iter().enumerate() {
        let fi = (Tensor::randn([b, 8], opt) - 0.3).relu();
        inputs.push((format!("z{}", i + 1), zi.detach().copy()));
        inputs.push((format!("h{}", i + 1), fi.copy()));
        outputs[0].heads.push((zi.shallow_clone(), fi));
    }
    // TF-KD-self: the teacher's logits of the same batch.
    let teacher = plan.teacher.then(|| {
        let zt = Tensor::randn([b, k], opt) * 3.0;
        inputs.push(("zt".into(), zt.copy()));
        Outputs::plain(zt, Tensor::zeros([b, 8], opt))
    });
    if c.base == "cs_kd" {
        inputs.push(("z".into(), z.narrow(0, 0, b).detach().copy()));
        inputs.push(("zp".into(), z.narrow(0, b, b).detach().copy()));
    } else {
        inputs.push(("z".into(), z.detach().copy()));
        inputs.push(("h".into(), h.copy()));
    }
    let loss = m
        .loss(&StepData {
            outputs: &outputs,
            labels: &y,
            samples: &samples,
            len: b as usize,
            epoch: c.epoch,
            teacher: teacher.as_ref(),
        })
        .unwrap();
    loss.total.backward();
    let grad = if c.base == "cs_kd" {
        z.grad().narrow(0, 0, b).copy()
    } else if head_logits.is_empty() {
        z.grad().copy()
    } else {
        // The deepest head's gradient, then every auxiliary head's.
        let mut all = vec![z.grad().copy()];
        all.extend(head_logits.iter().map(|zi| zi.grad().copy()));
        Tensor::cat(&all, 0)
    };
    if c.train_len > 0 {
        memory = Some(m.state().remove(0).1);
    }
    Ours {
        inputs: inputs
            .into_iter()
            .map(|(n, t)| (format!("{}.{n}", c.name), t))
            .collect(),
        terms: plan
            .terms
            .iter()
            .zip(&loss.terms)
            .map(|(n, t)| (*n, t.double_value(&[])))
            .collect(),
        total: loss.total.double_value(&[]),
        grad,
        memory,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= RTOL * b.abs().max(1e-6)
}

/// Elementwise |a - b| <= RTOL |b| + 1e-8 (gradients have entries near 0).
fn worst(a: &Tensor, b: &Tensor) -> Option<(usize, f64, f64)> {
    let a: Vec<f32> = Vec::try_from(a.flatten(0, -1)).unwrap();
    let b: Vec<f32> = Vec::try_from(b.flatten(0, -1)).unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .enumerate()
        .find(|(_, (x, y))| {
            (f64::from(**x) - f64::from(**y)).abs() > RTOL * f64::from(y.abs()) + 1e-8
        })
        .map(|(i, (x, y))| (i, f64::from(*x), f64::from(*y)))
}

#[test]
fn every_method_matches_its_official_arithmetic() {
    let Some(py) = python() else {
        println!("SKIP: no .venv/bin/python next to Cargo.toml");
        return;
    };
    let probe = Command::new(&py)
        .args(["-c", "import torch, safetensors"])
        .output()
        .unwrap();
    if !probe.status.success() {
        println!(
            "SKIP: the venv lacks torch or safetensors (bash ci/setup.sh --test installs them)"
        );
        return;
    }
    tch::manual_seed(20_200_617);
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let ours: Vec<Ours> = cases.iter().map(ours).collect();
    let inputs: Vec<(String, Tensor)> = ours
        .iter()
        .flat_map(|o| o.inputs.iter().map(|(n, t)| (n.clone(), t.shallow_clone())))
        .collect();
    checkpoint::write_safetensors(&dir.path().join("in.safetensors"), &inputs).unwrap();
    let specs: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            let mut v = c.official.clone();
            v["name"] = c.name.into();
            v
        })
        .collect();
    std::fs::write(
        dir.path().join("cases.json"),
        serde_json::to_string(&specs).unwrap(),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/selfkd_losses.py");
    let o = Command::new(&py)
        .arg(&script)
        .arg(dir.path().join("in.safetensors"))
        .arg(dir.path().join("cases.json"))
        .arg(dir.path().join("out.safetensors"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs: std::collections::BTreeMap<String, Tensor> =
        checkpoint::read_safetensors(&dir.path().join("out.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let mut problems = Vec::new();
    let mut compared = 0;
    for (c, o) in cases.iter().zip(&ours) {
        let get = |k: &str| {
            theirs
                .get(&format!("{}.{k}", c.name))
                .unwrap_or_else(|| panic!("{}: the official side has no `{k}`", c.name))
        };
        for (name, v) in o.terms.iter().chain([&("total", o.total)]) {
            let want = get(name).double_value(&[0]);
            compared += 1;
            if !close(*v, want) {
                problems.push(format!("{}: {name} {v} vs official {want}", c.name));
            }
        }
        compared += 1;
        if let Some((i, a, b)) = worst(&o.grad, get("grad")) {
            problems.push(format!(
                "{}: d total / d logits [{i}] {a} vs official {b}",
                c.name
            ));
        }
        if let Some(mem) = &o.memory {
            compared += 1;
            if let Some((i, a, b)) = worst(mem, get("memory")) {
                problems.push(format!("{}: memory [{i}] {a} vs official {b}", c.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    println!(
        "{compared} values of {} cases agree with the official arithmetic",
        cases.len()
    );
    assert!(compared >= 40, "only {compared} comparisons");
}
