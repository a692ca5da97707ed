//! BYOT through the library and the binary:
//! - with its KD and hint weights at 0 (and α = 0, so every head's CE is
//!   weighted 1), one step leaves the deepest head's own path (the last
//!   stage and `fc`) bit for bit where the baseline's step leaves it: those
//!   weights get gradient only from the deepest head's CE, which is the
//!   baseline's loss; the earlier stages (which also feed the auxiliary
//!   heads) and the heads themselves move differently, and the initial
//!   weights of the network are the baseline's;
//! - a BYOT run exports the plain network to model.safetensors and the heads
//!   to heads.safetensors, the checkpoint hash (and `hash`) covers both, the
//!   record says its accuracy is the deepest head's and logs every head's,
//!   and `eval` of the run's model gives the record's numbers.
mod common;
use common::*;
use ddgsd_bench::method::arms;
use ddgsd_bench::method::loss::LossConfig;
use ddgsd_bench::method::{self, MethodEnv};
use ddgsd_bench::model::{self, heads::Heads, ArchSpec};
use ddgsd_bench::optim::sgd::Sgd;
use ddgsd_bench::platform::runtime::{MemoryFormat, Precision};
use ddgsd_bench::train::exec::Exec;
use ddgsd_bench::train::feed::Inputs;
use ddgsd_bench::train::step::Net;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// One step of `arm` from the seed-7 weights on a fixed batch; the
/// network's variables after it.
fn one_step(arm: &str, fields: &str) -> Vec<(String, Tensor)> {
    let mut a = arms::builtin(arm, &LossConfig::default()).unwrap();
    if !fields.is_empty() {
        a.method = a
            .method
            .with_fields(toml::from_str(fields).unwrap())
            .unwrap();
    }
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let spec = ArchSpec {
        name: "resnet8".into(),
        width: Some(8),
    };
    let net = model::build(&spec, &vs.root(), 10).unwrap();
    let m_plan = method::plan(&a);
    let heads = m_plan
        .heads
        .then(|| Heads::of(&vs.root(), net.as_ref(), 10).unwrap());
    let exec = Exec::new(Device::Cpu, Precision::Fp32, MemoryFormat::Contiguous);
    let mut opt = Sgd::new(&vs, 0.9, true, 5e-4);
    let env = MethodEnv {
        classes: 10,
        train_len: 16,
        epochs: 1,
        device: Device::Cpu,
    };
    let mut m = method::build(&a, &env).unwrap();
    tch::manual_seed(11);
    let inputs = Inputs {
        x: Tensor::randn([16, 3, 32, 32], (Kind::Float, Device::Cpu)),
        labels: Tensor::randint(10, [16], (Kind::Int64, Device::Cpu)),
        samples: Tensor::arange(16, (Kind::Int64, Device::Cpu)),
        len: 16,
    };
    let n = Net {
        net: net.as_ref(),
        exec: &exec,
        heads: heads.as_ref(),
        teacher: None,
    };
    let before: Vec<(String, Tensor)> = sorted(&vs);
    let _ = n.step(m.as_mut(), &mut opt, &inputs, 0, 0.1).unwrap();
    let mut after = sorted(&vs);
    after.extend(before.into_iter().map(|(k, v)| (format!("init:{k}"), v)));
    after
}

fn sorted(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.detach().copy()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn byot_without_kd_and_hints_steps_the_deepest_path_as_the_baseline() {
    let base = one_step("baseline", "");
    let byot = one_step("byot", "alpha = 0.0\nbeta = 0.0");
    let get = |v: &[(String, Tensor)], k: &str| {
        v.iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("{k}"))
            .1
            .shallow_clone()
    };
    let (mut same, mut moved) = (0, 0);
    for (name, t) in &base {
        let b = get(&byot, name);
        if name.starts_with("init:") {
            assert!(
                t.equal(&b),
                "{name}: the initial weights are the baseline's"
            );
        } else if name.starts_with("fc.") || name.starts_with("layer3.") {
            assert!(
                t.equal(&b),
                "{name}: the deepest head's own path steps as the baseline's"
            );
            same += 1;
        } else if name.starts_with("layer1.") && name.ends_with("conv1.weight") {
            assert!(
                !t.equal(&b),
                "{name}: the heads' CE reaches the earlier stages"
            );
            moved += 1;
        }
    }
    assert!(same >= 10 && moved >= 1, "{same} {moved}");
    let heads_moved = byot
        .iter()
        .filter(|(n, _)| n.starts_with("heads.") && n.ends_with("middle_fc1.weight"))
        .all(|(n, t)| !t.equal(&get(&byot, &format!("init:{n}"))));
    assert!(heads_moved, "the heads train");
}

#[test]
fn a_byot_run_exports_the_plain_network_and_its_heads_apart() {
    let p = Project::new();
    p.write("suites/b.toml", &tiny_suite("b", &["byot"], &[0], 2, ""));
    let o = p.run(&["run", "suites/b.toml", "--no-check", "--out", "r"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let dir = p.path().join("r/b/resnet8w4__byot__s0");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("record.json")).unwrap()).unwrap();
    let m = &rec["metrics"];
    assert_eq!(m["accuracy_of"], "deepest head (the network's own fc)");
    let heads = m["heads_top1_final"].as_array().unwrap();
    assert_eq!(heads.len(), 2, "resnet8: heads after stages 1 and 2");
    let last = rec["history"].as_array().unwrap().last().unwrap();
    assert_eq!(&last["heads_test_top1"], &m["heads_top1_final"]);
    for k in ["ce", "kd", "hint"] {
        assert!(last[k].as_f64().unwrap().is_finite(), "{k}");
    }
    let model =
        ddgsd_bench::model::checkpoint::read_safetensors(&dir.join("model.safetensors")).unwrap();
    assert!(model.iter().all(|(n, _)| !n.starts_with("heads")));
    let hd =
        ddgsd_bench::model::checkpoint::read_safetensors(&dir.join("heads.safetensors")).unwrap();
    assert!(hd
        .iter()
        .any(|(n, _)| n == "bottleneck2_1.7.num_batches_tracked"));
    // The checkpoint hash covers the network and its heads, as `hash` does.
    let h = p.run(&["hash", &dir.join("model.safetensors").display().to_string()]);
    assert_eq!(code(&h), 0);
    assert!(
        stdout(&h).starts_with(rec["checkpoint_sha256"].as_str().unwrap()),
        "{}",
        stdout(&h)
    );
    // `eval` of the run: the deepest head's numbers of its last epoch.
    let e = p.run(&["eval", &dir.display().to_string(), "--json"]);
    assert_eq!(code(&e), 0, "{}", stderr(&e));
    let v: serde_json::Value = serde_json::from_str(&stdout(&e)).unwrap();
    let text = v.to_string();
    assert!(text.contains(&format!("{}", m["top1_final"])), "{text}");
}

#[test]
fn a_byot_run_stopped_mid_epoch_resumes_to_the_straight_hash() {
    let p = Project::new();
    p.write(
        "suites/b.toml",
        &tiny_suite("b", &["byot"], &[0], 3, "").replace("train = 192", "train = 1536"),
    );
    let o = p.run(&["run", "suites/b.toml", "--no-check", "--out", "straight"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let want = hashes(&p, "straight", "b");
    // Killed after its first checkpoint (heads and all), then resumed.
    let mut c = p.spawn(&["run", "suites/b.toml", "--no-check", "--out", "k"]);
    let dir = p.path().join("k/b/resnet8w4__byot__s0");
    wait_for("a checkpoint", std::time::Duration::from_secs(60), || {
        dir.join("checkpoint/state.json").exists()
    });
    unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
    let _ = c.wait();
    assert!(!dir.join("record.json").exists(), "killed before the end");
    // Its checkpoint (the heads beside the network) evaluates as the network.
    let e = p.run(&["eval", &dir.display().to_string()]);
    assert_eq!(code(&e), 0, "{}", stderr(&e));
    assert!(stdout(&e).contains("checkpoint"), "{}", stdout(&e));
    let o = p.run(&["run", "suites/b.toml", "--no-check", "--out", "k"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(hashes(&p, "k", "b"), want);
    assert_eq!(
        read_record(&p.path().join("k/b"), "resnet8w4__byot__s0")["timing"]["resumed"],
        true
    );
}
