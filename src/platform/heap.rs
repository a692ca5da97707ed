//! The C heap under libtorch's CPU tensors.
//!
//! libtorch allocates every CPU tensor with `posix_memalign` (64-byte
//! aligned) and frees it when the last reference goes. With glibc's default
//! settings a training step's activations (a few MiB to tens of MiB each)
//! are mmap'ed and unmapped, or trimmed off the top of the heap, every step,
//! so the kernel zero-fills fresh pages on every step. On a 2-core CPU this
//! cost about 10% of a ResNet-20 DDGSD step (3x the minor page faults).
//!
//! The binary therefore tells glibc, once at start-up and before libtorch
//! allocates anything, to keep freed memory (trimming only past 2 GiB free) and to serve
//! blocks up to the largest size `mallopt` allows from the heap, as a
//! caching allocator would. The bits of a run do not depend on it (the
//! alignment libtorch asks for is unchanged); the setting is recorded in
//! each record's `env.heap`. A user who sets glibc's own `MALLOC_*`
//! variables keeps them: nothing is changed then.
//!
//! tcmalloc (LD_PRELOAD) measured the same as this; jemalloc and mimalloc
//! were twice as slow on this workload (they return pages eagerly).
use std::sync::OnceLock;

/// The largest mmap threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2).
pub const MMAP_THRESHOLD: usize = 32 << 20;

static SETTING: OnceLock<String> = OnceLock::new();

/// Applies the settings (once per process; later calls return the first
/// result) and returns what the heap does, as recorded in `env.heap`.
pub fn tune() -> &'static str {
    SETTING.get_or_init(apply)
}

/// What [`tune`] did, or "glibc defaults" when it was not called (the
/// library used by another program, unit tests).
pub fn describe() -> String {
    SETTING
        .get()
        .cloned()
        .unwrap_or_else(|| "glibc defaults".into())
}

/// glibc's own malloc variables set in the environment.
fn user_settings() -> Vec<String> {
    std::env::vars()
        .filter(|(k, v)| {
            k.starts_with("MALLOC_") || (k == "GLIBC_TUNABLES" && v.contains("glibc.malloc."))
        })
        .map(|(k, _)| k)
        .collect()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> String {
    let user = user_settings();
    if !user.is_empty() {
        return format!(
            "glibc, left as the environment sets it ({})",
            user.join(", ")
        );
    }
    // SAFETY: mallopt only changes the allocator's parameters; it is called
    // before any other thread of this process allocates.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
    };
    if ok {
        format!(
            "glibc, mmap threshold {} MiB, trim threshold 2 GiB",
            MMAP_THRESHOLD >> 20
        )
    } else {
        "glibc defaults (mallopt refused the settings)".into()
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> String {
    "the platform's allocator, untuned".into()
}
