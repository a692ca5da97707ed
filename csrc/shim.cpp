// Thin C ABI over the libtorch switches that tch 0.24 does not expose.
// Every function is noexcept from Rust's point of view: C++ exceptions are
// caught here and reported as a non-zero return code.
#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>
#include <vector>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Tensor.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/version.h>
#include <cstring>
#include <string>

static void copy_out(const std::string &s, char *buf, size_t len) {
  if (len == 0) return;
  size_t n = s.size() < len - 1 ? s.size() : len - 1;
  std::memcpy(buf, s.data(), n);
  buf[n] = '\0';
}

extern "C" {

// Turn deterministic algorithms on or off (warn_only = false: an op without a
// deterministic implementation throws), deterministic cuDNN, no cuDNN
// benchmarking, and TF32 off for fp32 matmul and convolutions.
int ddgsd_set_deterministic(int on) {
  try {
    auto &ctx = at::globalContext();
    ctx.setDeterministicAlgorithms(on != 0, false);
    ctx.setDeterministicCuDNN(on != 0);
    ctx.setBenchmarkCuDNN(false);
    if (on != 0) {
      ctx.setAllowTF32CuDNN(false);
      ctx.setAllowTF32CuBLAS(false);
    }
    return 0;
  } catch (...) {
    return 1;
  }
}

// Read the flags back: bit 0 deterministic algorithms, bit 1 warn-only,
// bit 2 deterministic cuDNN, bit 3 cuDNN benchmark, bit 4 TF32 cuDNN,
// bit 5 TF32 cuBLAS.
int ddgsd_get_flags() {
  auto &ctx = at::globalContext();
  int f = 0;
  if (ctx.deterministicAlgorithms()) f |= 1;
  if (ctx.deterministicAlgorithmsWarnOnly()) f |= 2;
  if (ctx.deterministicCuDNN()) f |= 4;
  if (ctx.benchmarkCuDNN()) f |= 8;
  if (ctx.allowTF32CuDNN()) f |= 16;
  if (ctx.allowTF32CuBLAS()) f |= 32;
  return f;
}

void ddgsd_torch_version(char *buf, size_t len) { copy_out(TORCH_VERSION, buf, len); }

// "NO AVX", "AVX2", "AVX512", ... : the CPU kernels libtorch dispatches to.
void ddgsd_cpu_capability(char *buf, size_t len) {
  try {
    copy_out(at::get_cpu_capability(), buf, len);
  } catch (...) {
    copy_out("unknown", buf, len);
  }
}

// CUDA runtime and cuDNN versions as integers (0 when CUDA is absent).
long ddgsd_cuda_version() {
  try {
    auto &hooks = at::detail::getCUDAHooks();
    if (!hooks.hasCUDA()) return 0;
    return hooks.versionCUDART();
  } catch (...) {
    return 0;
  }
}

long ddgsd_cudnn_version() {
  try {
    auto &hooks = at::detail::getCUDAHooks();
    if (!hooks.hasCUDA()) return 0;
    return hooks.versionCuDNN();
  } catch (...) {
    return 0;
  }
}

// bf16 autocast on the CPU (cuda = 0) or CUDA (cuda = 1) for the calling
// thread only (autocast state is thread-local in libtorch): convolutions and
// matmuls run in bf16, weights stay fp32. The cast cache is off, so no bf16
// copy of a weight outlives the forward that made it.
int ddgsd_set_autocast(int cuda, int on) {
  try {
    auto dt = cuda != 0 ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_cache_enabled(false);
    at::autocast::set_autocast_dtype(dt, at::kBFloat16);
    at::autocast::set_autocast_enabled(dt, on != 0);
    return 0;
  } catch (...) {
    return 1;
  }
}

int ddgsd_autocast_enabled(int cuda) {
  return at::autocast::is_autocast_enabled(cuda != 0 ? at::kCUDA : at::kCPU) ? 1 : 0;
}

// A channels_last copy of a 4-D tensor (a new handle, as tch's C API makes
// them), or null on error.
void *ddgsd_channels_last(void *t) {
  try {
    auto *x = static_cast<at::Tensor *>(t);
    return new at::Tensor(x->contiguous(at::MemoryFormat::ChannelsLast));
  } catch (...) {
    return nullptr;
  }
}

int ddgsd_is_channels_last(void *t) {
  auto *x = static_cast<at::Tensor *>(t);
  return x->is_contiguous(at::MemoryFormat::ChannelsLast) ? 1 : 0;
}

// One SGD update (PyTorch's rule, dampening 0) over every parameter with a
// gradient, as foreach (multi-tensor) ops: the same elementwise operations
// in the same order as one op per parameter, so the same bits, in a few
// calls (and, on CUDA, a few multi-tensor kernels) instead of several per
// parameter.
int ddgsd_sgd_step(void **params, void **bufs, size_t n, double lr, double m, double wd,
                   int nesterov) {
  try {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> p, g, b;
    for (size_t i = 0; i < n; ++i) {
      auto &pi = *static_cast<at::Tensor *>(params[i]);
      auto gi = pi.grad();
      if (!gi.defined()) continue;
      p.push_back(pi);
      g.push_back(gi);
      b.push_back(*static_cast<at::Tensor *>(bufs[i]));
    }
    if (p.empty()) return 0;
    std::vector<at::Tensor> d = wd != 0.0 ? at::_foreach_add(g, at::_foreach_mul(p, wd)) : g;
    if (m != 0.0) {
      at::_foreach_mul_(b, m);
      at::_foreach_add_(b, d);
      d = nesterov != 0 ? at::_foreach_add(d, at::_foreach_mul(b, m)) : b;
    }
    at::_foreach_sub_(p, at::_foreach_mul(d, lr));
    return 0;
  } catch (...) {
    return 1;
  }
}

int ddgsd_get_num_threads() { return at::get_num_threads(); }
int ddgsd_get_num_interop_threads() { return at::get_num_interop_threads(); }

}  // extern "C"
