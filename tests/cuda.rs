//! CUDA checks. Without a GPU every test here prints why it is skipped and
//! passes; ci/gpu-check.sh runs the same checks through the binary on the
//! GPU machine.
mod common;
use common::*;

fn cuda() -> bool {
    if tch::Cuda::is_available() {
        true
    } else {
        println!("SKIP: no CUDA device on this machine (tch::Cuda::is_available() = false); CUDA checks not run");
        false
    }
}

fn suite(p: &Project, deterministic: bool) {
    let s = tiny_suite(
        "cu",
        &["ddgsd"],
        &[0],
        3,
        &format!("deterministic = {deterministic}"),
    )
    .replace("device = \"cpu\"", "device = \"cuda\"");
    p.write("suites/cu.toml", &s);
}

#[test]
fn cuda_runs_twice_give_one_hash_and_record_the_flags() {
    if !cuda() {
        return;
    }
    let p = Project::new();
    suite(&p, true);
    for out in ["a", "b"] {
        let o = p.run(&["run", "suites/cu.toml", "--no-check", "--out", out]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let (a, b) = (
        p.records("a", "cu").remove(0),
        p.records("b", "cu").remove(0),
    );
    assert_eq!(a["checkpoint_sha256"], b["checkpoint_sha256"]);
    assert_eq!(a["env"]["device"], "cuda:0");
    assert_eq!(a["env"]["determinism"]["deterministic_algorithms"], true);
    assert_eq!(a["env"]["determinism"]["cudnn_deterministic"], true);
    assert_eq!(a["env"]["determinism"]["cudnn_benchmark"], false);
    assert_eq!(a["env"]["determinism"]["tf32_cudnn"], false);
    assert_eq!(a["env"]["determinism"]["tf32_cublas"], false);
    assert_eq!(a["env"]["cublas_workspace_config"], ":4096:8");
    assert!(a["platform"].as_str().unwrap().starts_with("cuda-"));
}

#[test]
fn cuda_initial_weights_equal_the_cpu_ones() {
    if !cuda() {
        return;
    }
    use ddgsd_bench::model::{build, ArchSpec};
    let make = |dev: tch::Device| {
        tch::manual_seed(ddgsd_bench::train::init_seed(7));
        let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
        build(
            &ArchSpec {
                name: "resnet8".into(),
                width: None,
            },
            &vs.root(),
            10,
        )
        .unwrap();
        vs.set_device(dev);
        ddgsd_bench::model::checkpoint::tensors_sha256(
            &ddgsd_bench::model::checkpoint::model_tensors(&vs),
        )
    };
    assert_eq!(make(tch::Device::Cpu), make(tch::Device::Cuda(0)));
}

#[test]
fn cuda_without_determinism_is_recorded() {
    if !cuda() {
        return;
    }
    let p = Project::new();
    suite(&p, false);
    let o = p.run(&["run", "suites/cu.toml", "--no-check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = p.records("results", "cu").remove(0);
    assert_eq!(r["env"]["determinism"]["deterministic_algorithms"], false);
    assert_eq!(r["config"]["runtime"]["deterministic"], false);
}

#[test]
fn asking_for_cuda_without_a_gpu_is_an_environment_error() {
    if tch::Cuda::is_available() {
        println!(
            "SKIP: this machine has a GPU; the no-GPU error path is checked on CPU-only machines"
        );
        return;
    }
    let p = Project::new();
    suite(&p, true);
    let o = p.run(&["run", "suites/cu.toml", "--no-check"]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("CUDA is not available"),
        "{}",
        error_line(&o)
    );
}

/// ImageNet's `data = "device"` path on a GPU: the loader's u8 batch is
/// page-locked, and the views normalised on the GPU equal the CPU's bit for
/// bit (the table lookup is exact).
#[test]
fn cuda_u8_views_are_pinned_and_normalise_to_the_cpu_bits() {
    if !cuda() {
        return;
    }
    use ddgsd_bench::data::augment::Distortion;
    use ddgsd_bench::data::pixels::{pixel_batch, PixelNorm, PixelViews};
    struct Src;
    impl PixelViews for Src {
        fn side(&self) -> usize {
            24
        }
        fn lut(&self) -> [[f32; 256]; 3] {
            ddgsd_bench::data::imagenet::image_ops::normalisation_table()
        }
        fn pixel_view(
            &self,
            i: usize,
            _at: usize,
            _s: u64,
            _e: u64,
            _v: u8,
            _d: Distortion,
            dst: &mut [u8],
        ) -> anyhow::Result<()> {
            for (k, p) in dst.iter_mut().enumerate() {
                *p = (k * 13 + i * 101) as u8;
            }
            Ok(())
        }
    }
    let gpu = tch::Device::Cuda(0);
    let idx: Vec<usize> = (0..16).collect();
    let pinned = pixel_batch(&Src, &idx, 0, 0, 0, Distortion::CropFlip, Some(gpu)).unwrap();
    assert!(
        pinned.is_pinned(tch::Device::Cuda(0)),
        "the u8 batch is page-locked"
    );
    let plain = pixel_batch(&Src, &idx, 0, 0, 0, Distortion::CropFlip, None).unwrap();
    assert!(pinned.equal(&plain));
    let on_gpu = PixelNorm::new(&Src.lut(), gpu).normalise(&pinned);
    assert_eq!(on_gpu.device(), gpu);
    let on_cpu = PixelNorm::new(&Src.lut(), tch::Device::Cpu).normalise(&plain);
    assert!(on_gpu.to_device(tch::Device::Cpu).equal(&on_cpu));
}

/// The self-distillation methods on CUDA under deterministic algorithms:
/// PS-KD's memory (index_select / index_copy_ on the device) and CS-KD's
/// no-grad partner pass, TF-KD-self's teacher pass and BYOT's heads raise no
/// determinism error, two processes give one hash, and device and host
/// batches agree.
#[test]
fn cuda_methods_are_deterministic() {
    if !cuda() {
        return;
    }
    let p = Project::new();
    // baseline: tf_kd_self's teacher; byot: the auxiliary heads on CUDA.
    let arms = [
        "cs_kd",
        "ps_kd",
        "tf_kd_reg",
        "label_smoothing",
        "baseline",
        "tf_kd_self",
        "byot",
    ];
    for (name, extra) in [("d", ""), ("h", "data = \"host\"")] {
        let s = tiny_suite("cm", &arms, &[0], 2, extra)
            .replace("device = \"cpu\"", "device = \"cuda\"");
        p.write(&format!("suites/{name}.toml"), &s);
    }
    for (suite, out) in [("d", "a"), ("d", "b"), ("h", "c")] {
        let o = p.run(&[
            "run",
            &format!("suites/{suite}.toml"),
            "--no-check",
            "--out",
            out,
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let (a, b, c) = (
        p.records("a", "cm"),
        p.records("b", "cm"),
        p.records("c", "cm"),
    );
    assert_eq!(a.len(), 7);
    for ((x, y), z) in a.iter().zip(&b).zip(&c) {
        assert_eq!(
            x["checkpoint_sha256"], y["checkpoint_sha256"],
            "{}",
            x["run_id"]
        );
        assert_eq!(
            x["checkpoint_sha256"], z["checkpoint_sha256"],
            "{} host",
            x["run_id"]
        );
        assert!(x["platform"].as_str().unwrap().starts_with("cuda-"));
    }
}

/// NCCL with world size 1 (torchrun's variables, WORLD_SIZE=1): the whole
/// data-parallel path through ProcessGroupNCCL on the GPU (rendezvous,
/// gradient buckets, sharded evaluation, broadcasts, barriers) trains the
/// bits of a single process.
#[test]
fn cuda_nccl_group_of_one_trains_the_plain_bits() {
    if !cuda() {
        return;
    }
    if !ddgsd_bench::platform::dist::has_nccl() {
        println!("SKIP: this binary was built without NCCL's headers (ci/setup.sh installs them); NCCL not run");
        return;
    }
    let p = Project::new();
    suite(&p, true);
    let o = p.run(&["run", "suites/cu.toml", "--no-check", "--out", "plain"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = p
        .cmd(&["run", "suites/cu.toml", "--no-check", "--out", "nccl"])
        .envs(rank_env(0, 1, free_port()))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (a, b) = (
        p.records("plain", "cu").remove(0),
        p.records("nccl", "cu").remove(0),
    );
    assert_eq!(b["env"]["backend"], "nccl");
    assert_eq!(a["checkpoint_sha256"], b["checkpoint_sha256"]);
    assert_eq!(a["metrics"], b["metrics"]);
}

/// Two ranks sharing the one GPU, gloo moving CUDA tensors: twice, one hash.
#[test]
fn cuda_two_ranks_share_one_gpu_with_gloo_twice() {
    if !cuda() {
        return;
    }
    let p = Project::new();
    let s = tiny_suite(
        "cu2",
        &["ddgsd"],
        &[0],
        3,
        "backend = \"gloo\"\nthreads = 1",
    )
    .replace("threads = 2\n", "")
    .replace("device = \"cpu\"", "device = \"cuda\"");
    p.write("suites/cu2.toml", &s);
    for out in ["a", "b"] {
        let o = p.run(&[
            "run",
            "suites/cu2.toml",
            "--no-check",
            "--ranks",
            "2",
            "--out",
            out,
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let (a, b) = (
        p.records("a", "cu2").remove(0),
        p.records("b", "cu2").remove(0),
    );
    assert_eq!(a["checkpoint_sha256"], b["checkpoint_sha256"]);
    assert_eq!(a["metrics"], b["metrics"]);
    assert_eq!(a["env"]["backend"], "gloo");
    assert_eq!(a["env"]["world_size"], 2);
    for r in a["env"]["ranks"].as_array().unwrap() {
        assert!(r["device"].as_str().unwrap().starts_with("cuda:"), "{r}");
    }
    assert!(
        a["platform"].as_str().unwrap().contains("/w2-gloo/"),
        "{}",
        a["platform"]
    );
}
