//! Safe wrappers over `csrc/shim.cpp`: the libtorch switches and facts that
//! tch 0.24 does not expose.
use std::ffi::{c_char, c_int, c_long, CStr};

extern "C" {
    fn ddgsd_set_deterministic(on: c_int) -> c_int;
    fn ddgsd_get_flags() -> c_int;
    fn ddgsd_torch_version(buf: *mut c_char, len: usize);
    fn ddgsd_cpu_capability(buf: *mut c_char, len: usize);
    fn ddgsd_cuda_version() -> c_long;
    fn ddgsd_cudnn_version() -> c_long;
    fn ddgsd_get_num_threads() -> c_int;
    fn ddgsd_get_num_interop_threads() -> c_int;
    fn ddgsd_set_autocast(cuda: c_int, on: c_int) -> c_int;
    fn ddgsd_autocast_enabled(cuda: c_int) -> c_int;
    fn ddgsd_channels_last(t: *mut std::ffi::c_void) -> *mut std::ffi::c_void;
    fn ddgsd_is_channels_last(t: *mut std::ffi::c_void) -> c_int;
    fn ddgsd_sgd_step(
        params: *mut *mut std::ffi::c_void,
        bufs: *mut *mut std::ffi::c_void,
        n: usize,
        lr: f64,
        m: f64,
        wd: f64,
        nesterov: c_int,
    ) -> c_int;
}

/// One SGD update of `params` (with their momentum `bufs`, same order) as
/// foreach ops; parameters without a gradient are skipped.
pub fn sgd_step(
    params: &[&tch::Tensor],
    bufs: &[&tch::Tensor],
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
) -> Result<(), String> {
    assert_eq!(params.len(), bufs.len());
    let ptr = |t: &&tch::Tensor| t.as_ptr() as *mut std::ffi::c_void;
    let mut p: Vec<_> = params.iter().map(ptr).collect();
    let mut b: Vec<_> = bufs.iter().map(ptr).collect();
    // SAFETY: valid tensor handles for the duration of the call; the shim
    // updates them in place and catches C++ exceptions.
    let rc = unsafe {
        ddgsd_sgd_step(
            p.as_mut_ptr(),
            b.as_mut_ptr(),
            p.len(),
            lr,
            momentum,
            weight_decay,
            c_int::from(nesterov),
        )
    };
    if rc != 0 {
        return Err("libtorch failed in the SGD update".into());
    }
    Ok(())
}

/// Turns bf16 autocast on or off for the calling thread on the CPU or on
/// CUDA (libtorch keeps this state per thread).
pub fn set_autocast(cuda: bool, on: bool) -> Result<(), String> {
    // SAFETY: plain C call, exceptions are caught on the C++ side.
    let rc = unsafe { ddgsd_set_autocast(c_int::from(cuda), c_int::from(on)) };
    if rc != 0 {
        return Err("libtorch refused to change the autocast state".into());
    }
    Ok(())
}

/// Whether autocast is on for the calling thread.
pub fn autocast_enabled(cuda: bool) -> bool {
    // SAFETY: reads thread-local libtorch state.
    unsafe { ddgsd_autocast_enabled(c_int::from(cuda)) != 0 }
}

/// A channels_last copy of `t` (4-D).
pub fn channels_last(t: &tch::Tensor) -> Result<tch::Tensor, String> {
    // SAFETY: the shim reads the tensor and returns a new owned handle (or null).
    let p = unsafe { ddgsd_channels_last(t.as_ptr() as *mut std::ffi::c_void) };
    if p.is_null() {
        return Err(format!("cannot make a {:?} tensor channels_last", t.size()));
    }
    // SAFETY: p is a heap-allocated at::Tensor, as tch's own handles are.
    Ok(unsafe { tch::Tensor::from_ptr(p as *mut torch_sys::C_tensor) })
}

/// Whether `t` is laid out channels_last.
pub fn is_channels_last(t: &tch::Tensor) -> bool {
    // SAFETY: reads the tensor's strides.
    unsafe { ddgsd_is_channels_last(t.as_ptr() as *mut std::ffi::c_void) != 0 }
}

/// The deterministic-execution flags as libtorch reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeterminismFlags {
    pub deterministic_algorithms: bool,
    pub warn_only: bool,
    pub cudnn_deterministic: bool,
    pub cudnn_benchmark: bool,
    pub tf32_cudnn: bool,
    pub tf32_cublas: bool,
}

/// Turns deterministic algorithms (errors, not warnings, on ops without a
/// deterministic implementation), deterministic cuDNN on, cuDNN benchmarking
/// off and, when `on`, TF32 off. Returns the flags read back from libtorch.
pub fn set_deterministic(on: bool) -> Result<DeterminismFlags, String> {
    // SAFETY: plain C call, exceptions are caught on the C++ side.
    let rc = unsafe { ddgsd_set_deterministic(c_int::from(on)) };
    if rc != 0 {
        return Err("libtorch refused to change the deterministic-algorithm flags".into());
    }
    Ok(flags())
}

pub fn flags() -> DeterminismFlags {
    // SAFETY: reads global libtorch state.
    let f = unsafe { ddgsd_get_flags() };
    DeterminismFlags {
        deterministic_algorithms: f & 1 != 0,
        warn_only: f & 2 != 0,
        cudnn_deterministic: f & 4 != 0,
        cudnn_benchmark: f & 8 != 0,
        tf32_cudnn: f & 16 != 0,
        tf32_cublas: f & 32 != 0,
    }
}

fn read_string(f: unsafe extern "C" fn(*mut c_char, usize)) -> String {
    let mut buf = [0 as c_char; 256];
    // SAFETY: the callee writes at most len bytes including the NUL.
    unsafe { f(buf.as_mut_ptr(), buf.len()) };
    // SAFETY: NUL-terminated by copy_out.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// libtorch's own version string (TORCH_VERSION of the headers compiled against).
pub fn torch_version() -> String {
    read_string(ddgsd_torch_version)
}

/// The CPU kernel family libtorch dispatches to ("AVX2", "AVX512", ...).
pub fn cpu_capability() -> String {
    read_string(ddgsd_cpu_capability)
}

/// CUDA runtime version as libtorch reports it (e.g. 13000), 0 without CUDA.
pub fn cuda_runtime_version() -> i64 {
    // SAFETY: plain C call.
    #[allow(clippy::useless_conversion)] // c_long is i32 on some targets
    i64::from(unsafe { ddgsd_cuda_version() })
}

/// cuDNN version (e.g. 91000), 0 without CUDA.
pub fn cudnn_version() -> i64 {
    // SAFETY: plain C call.
    #[allow(clippy::useless_conversion)]
    i64::from(unsafe { ddgsd_cudnn_version() })
}

/// Intra-op and inter-op thread counts currently in force.
pub fn thread_counts() -> (i32, i32) {
    // SAFETY: plain C calls.
    unsafe { (ddgsd_get_num_threads(), ddgsd_get_num_interop_threads()) }
}
