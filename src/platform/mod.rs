//! The machine under a run: the `[runtime]` config (`runtime`), the C++
//! shim to libtorch's switches (`shim`: determinism, threads, autocast,
//! foreach SGD), the C heap (`heap`), device selection, and the environment
//! a run records (`env` in record.json) with the platform fingerprint that
//! keys checkpoint pins in expected files; `dist` (c10d process groups
//! through `csrc/dist.cpp`) and `launch` (the rank a launcher made this
//! process) for data-parallel runs.
//!
//! Uses: nothing of the crate.
pub mod dist;
pub mod heap;
pub mod launch;
pub mod runtime;
pub mod shim;

use anyhow::{bail, Result};
use runtime::{MemoryFormat, RuntimeConfig};
use serde::{Deserialize, Serialize};
use tch::Device;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvInfo {
    pub ddgsd_bench: String,
    pub tch: String,
    pub libtorch: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// CPU model name, or GPU name.
    pub device_name: String,
    /// libtorch's CPU kernel family (AVX2, AVX512, ...).
    pub cpu_capability: String,
    /// CUDA runtime version (e.g. "13.0"), absent on CPU.
    pub cuda: Option<String>,
    pub cudnn: Option<String>,
    pub gpu_driver: Option<String>,
    pub threads: usize,
    pub interop_threads: usize,
    pub threads_overridden: bool,
    pub precision: String,
    /// `contiguous` or `channels_last` (absent in records made before it).
    #[serde(default = "contiguous")]
    pub memory_format: String,
    pub determinism: shim::DeterminismFlags,
    pub cublas_workspace_config: Option<String>,
    pub os: String,
    pub hostname: String,
    /// How ImageNet files are decoded and resized
    /// (`data::imagenet::decode::DECODER`, passed in by the caller, since the
    /// platform layer sits below the data layer); empty in older records.
    #[serde(default)]
    pub image_decoder: String,
    /// How the C heap under libtorch's CPU tensors is set up
    /// ([`crate::platform::heap`]); empty in older records.
    #[serde(default)]
    pub heap: String,
    /// Ranks of the run (1 outside data-parallel runs and in older records).
    #[serde(default = "one")]
    pub world_size: usize,
    /// The data group's transport (`gloo`, `nccl`) of a data-parallel run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Every rank's host, pid and device, in rank order (data-parallel runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranks: Vec<dist::Peer>,
}

fn one() -> usize {
    1
}

impl EnvInfo {
    /// Marks the environment as that of a data-parallel group.
    pub fn set_group(&mut self, backend: &str, peers: &[dist::Peer]) {
        self.world_size = peers.len();
        self.backend = Some(backend.to_string());
        self.ranks = peers.to_vec();
    }

    /// Short stable string naming what determines a run's bits beyond its
    /// config: device name, driver/CUDA/cuDNN, libtorch, precision, CPU
    /// kernel family, world size and transport of a data-parallel run,
    /// threads. Checkpoint pins are keyed by it.
    pub fn platform(&self) -> String {
        let dev = slug(&self.device_name);
        let mut parts = vec![
            if self.device.starts_with("cuda") {
                format!("cuda-{dev}")
            } else {
                format!("cpu-{dev}")
            },
            format!("torch{}", self.libtorch),
        ];
        if let (Some(c), Some(d)) = (&self.cuda, &self.cudnn) {
            parts.push(format!("cuda{c}-cudnn{d}"));
            if let Some(drv) = &self.gpu_driver {
                parts.push(format!("driver{drv}"));
            }
        } else {
            parts.push(slug(&self.cpu_capability));
        }
        parts.push(self.precision.clone());
        if self.memory_format != "contiguous" {
            parts.push(self.memory_format.clone());
        }
        if !self.determinism.deterministic_algorithms {
            // Bits of such a run are not reproducible: never compared to pins.
            parts.push("nondeterministic".into());
        }
        if self.world_size > 1 {
            parts.push(format!(
                "w{}-{}",
                self.world_size,
                self.backend.as_deref().unwrap_or("gloo")
            ));
        }
        parts.push(format!("t{}", self.threads));
        parts.join("/")
    }
}

fn contiguous() -> String {
    "contiguous".into()
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn nvidia_smi(index: usize) -> Option<(String, String)> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version",
            "--format=csv,noheader",
            &format!("--id={index}"),
        ])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.lines().next()?.split(',').map(|x| x.trim().to_string());
    Some((it.next()?, it.next()?))
}

fn version_str(v: i64, cudnn: bool) -> String {
    if cudnn {
        // 91000 -> 9.10.0
        format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
    } else {
        // 13000 -> 13.0
        format!("{}.{}", v / 1000, (v % 1000) / 10)
    }
}

/// Chooses the device a runtime config asks for; `cuda` without a GPU is an
/// environment error, `auto` falls back to the CPU.
pub fn select_device(rt: &RuntimeConfig) -> Result<Device> {
    let avail = tch::Cuda::is_available();
    match rt.device.as_str() {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(if avail { Device::Cuda(0) } else { Device::Cpu }),
        d => {
            let idx = d
                .strip_prefix("cuda:")
                .map(|n| n.parse().unwrap_or(0))
                .unwrap_or(0);
            if !avail {
                bail!("runtime.device = `{d}`, but CUDA is not available on this machine");
            }
            if idx >= tch::Cuda::device_count() as usize {
                bail!(
                    "runtime.device = `{d}`, but only {} CUDA devices exist",
                    tch::Cuda::device_count()
                );
            }
            Ok(Device::Cuda(idx))
        }
    }
}

/// Process-wide set-up, before any tensor work: threads, the cuBLAS
/// workspace and the determinism flags. Thread counts can be set only once
/// per process, so every run of a process shares them.
pub fn init(rt: &RuntimeConfig) -> Result<()> {
    if rt.deterministic && std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
        std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
    }
    tch::set_num_threads(rt.threads as i32);
    static INTEROP: std::sync::Once = std::sync::Once::new();
    INTEROP.call_once(|| tch::set_num_interop_threads(1));
    let flags = shim::set_deterministic(rt.deterministic).map_err(anyhow::Error::msg)?;
    if rt.deterministic && !flags.deterministic_algorithms {
        bail!("libtorch did not turn deterministic algorithms on");
    }
    let (t, _) = shim::thread_counts();
    if t as usize != rt.threads {
        bail!("asked libtorch for {} threads, it uses {t}", rt.threads);
    }
    Ok(())
}

/// Reads the environment as it is now; `image_decoder` names how ImageNet
/// files are decoded (`data::imagenet::decode::DECODER`).
pub fn collect(device: Device, rt: &RuntimeConfig, image_decoder: &str) -> EnvInfo {
    let (threads, interop) = shim::thread_counts();
    let (device_s, name, driver) = match device {
        Device::Cuda(i) => {
            let (n, d) = nvidia_smi(i)
                .map(|(n, d)| (n, Some(d)))
                .unwrap_or(("cuda".into(), None));
            (format!("cuda:{i}"), n, d)
        }
        _ => ("cpu".into(), cpu_model(), None),
    };
    let cuda_v = shim::cuda_runtime_version();
    let cudnn_v = shim::cudnn_version();
    let on_cuda = device.is_cuda();
    EnvInfo {
        ddgsd_bench: env!("CARGO_PKG_VERSION").to_string(),
        tch: "0.24.0".into(),
        libtorch: shim::torch_version(),
        device: device_s,
        device_name: name,
        cpu_capability: shim::cpu_capability(),
        cuda: (on_cuda && cuda_v > 0).then(|| version_str(cuda_v, false)),
        cudnn: (on_cuda && cudnn_v > 0).then(|| version_str(cudnn_v, true)),
        gpu_driver: driver,
        threads: threads as usize,
        interop_threads: interop as usize,
        threads_overridden: rt.threads_overridden,
        precision: format!("{:?}", rt.precision).to_lowercase(),
        memory_format: match rt.memory_format {
            MemoryFormat::Contiguous => "contiguous".into(),
            MemoryFormat::ChannelsLast => "channels_last".into(),
        },
        determinism: shim::flags(),
        cublas_workspace_config: std::env::var("CUBLAS_WORKSPACE_CONFIG").ok(),
        os: format!("{} {}", std::env::consts::OS, os_release()),
        hostname: std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        image_decoder: image_decoder.to_string(),
        heap: heap::describe(),
        world_size: 1,
        backend: None,
        ranks: vec![],
    }
}

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_string_is_stable_and_sensitive() {
        let mut e = EnvInfo {
            ddgsd_bench: "0.1.0".into(),
            tch: "0.24.0".into(),
            libtorch: "2.11.0".into(),
            device: "cpu".into(),
            device_name: "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz".into(),
            cpu_capability: "AVX512".into(),
            cuda: None,
            cudnn: None,
            gpu_driver: None,
            threads: 2,
            interop_threads: 1,
            threads_overridden: false,
            precision: "fp32".into(),
            memory_format: "contiguous".into(),
            determinism: shim::DeterminismFlags {
                deterministic_algorithms: true,
                warn_only: false,
                cudnn_deterministic: true,
                cudnn_benchmark: false,
                tf32_cudnn: false,
                tf32_cublas: false,
            },
            cublas_workspace_config: None,
            os: "linux".into(),
            hostname: "a".into(),
            image_decoder: String::new(),
            heap: String::new(),
            world_size: 1,
            backend: None,
            ranks: vec![],
        };
        assert_eq!(
            e.platform(),
            "cpu-intel-r-xeon-r-platinum-8375c-cpu-2.90ghz/torch2.11.0/avx512/fp32/t2"
        );
        let p = e.platform();
        e.hostname = "b".into();
        assert_eq!(p, e.platform(), "the host name is not part of the platform");
        e.threads = 1;
        assert_ne!(p, e.platform());
        e.threads = 2;
        e.determinism.deterministic_algorithms = false;
        assert_eq!(
            e.platform(),
            "cpu-intel-r-xeon-r-platinum-8375c-cpu-2.90ghz/torch2.11.0/avx512/fp32/nondeterministic/t2"
        );
        e.determinism.deterministic_algorithms = true;
        e.device = "cuda:0".into();
        e.device_name = "NVIDIA H200".into();
        e.cuda = Some("13.0".into());
        e.cudnn = Some("9.10.2".into());
        e.gpu_driver = Some("580.65".into());
        assert_eq!(
            e.platform(),
            "cuda-nvidia-h200/torch2.11.0/cuda13.0-cudnn9.10.2/driver580.65/fp32/t2"
        );
        e.world_size = 8;
        e.backend = Some("nccl".into());
        assert_eq!(
            e.platform(),
            "cuda-nvidia-h200/torch2.11.0/cuda13.0-cudnn9.10.2/driver580.65/fp32/w8-nccl/t2"
        );
    }
}
