//! Build script: links the binary against the pip-installed libtorch that
//! torch-sys found, and compiles the small C++ shim (`csrc/shim.cpp`) that
//! reaches the libtorch switches tch does not expose (deterministic
//! algorithms, cuDNN flags, TF32, CPU capability, versions).
//!
//! Three facts from ../shared/toolchain.md drive this file:
//! 1. torch-sys declares `links = "tch"`, so its lib dir arrives as
//!    `DEP_TCH_LIBTORCH_LIB`.
//! 2. torch-sys passes `-rpath` only to its own static wrapper: the final
//!    artefacts need their own rpath to the libtorch lib dir.
//! 3. rustc links with `--as-needed`; nothing references libtorch_cuda, so
//!    it must be forced in or CUDA silently disappears at run time.
use std::env;
use std::path::{Path, PathBuf};

const EXPECTED_TORCH: &str = "2.11.0";

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    println!("cargo:rerun-if-changed=csrc/dist.cpp");
    println!("cargo:rerun-if-env-changed=DDGSD_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=DDGSD_NO_NCCL");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=DDGSD_EXTRA_RPATH");

    let lib_dir = PathBuf::from(
        env::var("DEP_TCH_LIBTORCH_LIB")
            .expect("torch-sys did not report its libtorch lib dir (DEP_TCH_LIBTORCH_LIB)"),
    );
    let torch_root = lib_dir
        .parent()
        .expect("libtorch lib dir has a parent")
        .to_path_buf();
    check_version(&torch_root);

    // rpath: the lib dir found at build time, then any extra directories
    // (e.g. where the same torch version lives on a GPU machine). Missing
    // entries are skipped by the loader; LD_LIBRARY_PATH still overrides.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    if let Ok(extra) = env::var("DDGSD_EXTRA_RPATH") {
        for dir in extra.split(':').filter(|d| !d.is_empty()) {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
    // The GPU machine of this project keeps torch here.
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,/opt/torch/.venv/lib/python3.11/site-packages/torch/lib"
    );
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,/opt/torch/.venv/lib/python3.12/site-packages/torch/lib"
    );

    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib_dir.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
        println!("cargo:rustc-cfg=ddgsd_has_cuda_lib");
    }
    println!("cargo:rustc-check-cfg=cfg(ddgsd_has_cuda_lib)");

    let include = torch_root.join("include");
    cc::Build::new()
        .cpp(true)
        .file("csrc/shim.cpp")
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .warnings(false)
        .compile("ddgsd_shim");
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    build_dist(&torch_root, &lib_dir);
}

/// `csrc/dist.cpp` (c10d process groups), when gloo's headers are present:
/// the wheel ships c10d's headers but not gloo's (Debian's libgloo-dev has
/// them; `DDGSD_GLOO_INCLUDE` names another include dir). NCCL too when its
/// headers and the two CUDA header wheels are installed (ci/setup.sh), unless
/// `DDGSD_NO_NCCL` is set. Without gloo the binary builds and says why data
/// parallelism is unavailable (cfg `ddgsd_dist` absent, the reason in
/// `DDGSD_DIST_MISSING`).
fn build_dist(torch_root: &Path, lib_dir: &Path) {
    println!("cargo:rustc-check-cfg=cfg(ddgsd_dist)");
    println!("cargo:rustc-check-cfg=cfg(ddgsd_nccl)");
    let gloo_inc = env::var("DDGSD_GLOO_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/include"));
    if !gloo_inc.join("gloo/context.h").exists() {
        let why = format!(
            "this binary was built without gloo's headers ({} not found; \
             apt-get install libgloo-dev, or set DDGSD_GLOO_INCLUDE, then rebuild: see ci/setup.sh)",
            gloo_inc.join("gloo/context.h").display()
        );
        println!("cargo:warning=data-parallel runs disabled: {why}");
        println!("cargo:rustc-env=DDGSD_DIST_MISSING={why}");
        return;
    }
    let include = torch_root.join("include");
    // `.libtorch` is a link into site-packages: resolve it to find the
    // nvidia/ wheels beside torch.
    let real = std::fs::canonicalize(torch_root).unwrap_or_else(|_| torch_root.to_path_buf());
    let site = real.parent().expect("torch has a parent").to_path_buf();
    let cu = site.join("nvidia/cu13/include");
    let nccl_inc = site.join("nvidia/nccl/include");
    let nccl = env::var_os("DDGSD_NO_NCCL").is_none()
        && lib_dir.join("libtorch_cuda.so").exists()
        && nccl_inc.join("nccl.h").exists()
        && cu.join("cuda_runtime.h").exists()
        && cu.join("crt/host_config.h").exists()
        && cu.join("nv/target").exists();
    let mut b = cc::Build::new();
    b.cpp(true)
        .file("csrc/dist.cpp")
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(&gloo_inc)
        .warnings(false);
    if nccl {
        b.define("USE_C10D_NCCL", None)
            .define("USE_CUDA", None)
            .include(&nccl_inc)
            .include(&cu);
    } else {
        println!(
            "cargo:warning=NCCL not compiled in (needs libtorch_cuda, {} and the CUDA headers of \
             nvidia-cuda-crt / nvidia-cuda-cccl under {}); data-parallel runs use gloo",
            nccl_inc.join("nccl.h").display(),
            cu.display()
        );
    }
    b.compile("ddgsd_dist");
    println!("cargo:rustc-cfg=ddgsd_dist");
    if nccl {
        println!("cargo:rustc-cfg=ddgsd_nccl");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-lc10_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

fn check_version(torch_root: &Path) {
    let version_py = torch_root.join("version.py");
    if let Ok(text) = std::fs::read_to_string(&version_py) {
        let found = text
            .lines()
            .find_map(|l| l.strip_prefix("__version__ = "))
            .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
            .unwrap_or_default();
        let base = found.split('+').next().unwrap_or("");
        if base != EXPECTED_TORCH {
            panic!(
                "{}: found torch {found}, but tch 0.24.0 needs exactly {EXPECTED_TORCH}; \
                 run ci/setup.sh (pip install torch=={EXPECTED_TORCH})",
                version_py.display()
            );
        }
    }
}
