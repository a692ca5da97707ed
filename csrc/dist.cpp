// Thin C ABI over libtorch's c10d: a TCPStore rendezvous, a gloo process
// group over CPU tensors for control messages (stop flags, run indices,
// digests, counts), and the data group for gradients (gloo, or NCCL where
// this file was compiled with its headers). Compiled by build.rs only when
// gloo's headers are present (-DUSE_C10D_GLOO); -DUSE_C10D_NCCL -DUSE_CUDA
// additionally when the NCCL and CUDA headers are.
//
// Every function catches C++ exceptions (`guarded`) and reports them as a
// failing return value with the message copied into `err`.
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <ATen/ATen.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

void copy_err(const std::string &s, char *buf, size_t len) {
  if (buf == nullptr || len == 0) return;
  size_t n = s.size() < len - 1 ? s.size() : len - 1;
  std::memcpy(buf, s.data(), n);
  buf[n] = '\0';
}

// Runs f, turning a C++ exception into `fail` with its message in err.
template <class R, class F>
R guarded(char *err, size_t errlen, R fail, F f) {
  try {
    return f();
  } catch (const std::exception &e) {
    copy_err(e.what(), err, errlen);
  } catch (...) {
    copy_err("unknown C++ exception", err, errlen);
  }
  return fail;
}

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> ctrl;  // gloo, CPU tensors
  c10::intrusive_ptr<c10d::Backend> data;  // gloo or NCCL, the training device
  std::chrono::milliseconds timeout;
};

std::shared_ptr<::gloo::transport::Device> gloo_device() {
  // As torch.distributed does: GLOO_SOCKET_IFNAME names the interface(s),
  // else the address this host's name resolves to (loopback as a fallback).
  const char *ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname != nullptr && ifname[0] != '\0') {
    std::string first(ifname);
    first = first.substr(0, first.find(','));
    return c10d::ProcessGroupGloo::createDeviceForInterface(first);
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

c10::intrusive_ptr<c10d::Backend> make_gloo(const c10::intrusive_ptr<c10d::Store> &store,
                                            int rank, int world,
                                            std::chrono::milliseconds timeout) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  opts->devices.push_back(gloo_device());
  opts->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
}

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 1:
      return c10d::ReduceOp::MAX;
    case 2:
      return c10d::ReduceOp::MIN;
    default:
      return c10d::ReduceOp::SUM;
  }
}

}  // namespace

extern "C" {

// Whether this build has NCCL.
int ddgsd_dist_has_nccl() {
#ifdef USE_C10D_NCCL
  return 1;
#else
  return 0;
#endif
}

// Rendezvous at host:port (rank 0 runs the TCPStore server) and create the
// groups. backend: 0 gloo, 1 NCCL (CUDA device `cuda_index`). Returns a
// handle, or null with the message in err.
void *ddgsd_dist_new(const char *host, int port, int rank, int world, int backend,
                     int cuda_index, long timeout_ms, char *err, size_t errlen) {
  return guarded<void *>(err, errlen, nullptr, [&]() -> void * {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = static_cast<std::size_t>(world);
    so.waitWorkers = true;
    so.timeout = timeout;
    auto base = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
    auto g = std::make_unique<Group>();
    g->store = base;
    g->timeout = timeout;
    g->ctrl = make_gloo(c10::make_intrusive<c10d::PrefixStore>("ctrl", base), rank, world, timeout);
    if (backend == 1) {
#ifdef USE_C10D_NCCL
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(cuda_index));
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      g->data = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl", base), rank, world, opts);
#else
      copy_err("this binary was built without NCCL's headers", err, errlen);
      return nullptr;
#endif
    } else {
      g->data = g->ctrl;
    }
    return g.release();
  });
}

// Destroys the groups (only after every collective completed; a group whose
// peer was lost is leaked instead, its destructor could wait for it).
void ddgsd_dist_free(void *h) { delete static_cast<Group *>(h); }

// All-reduce each of the n tensors in place, in this order: every collective
// is launched first, then each is waited for. group: 0 control, 1 data.
// op: 0 sum, 1 max, 2 min.
int ddgsd_dist_allreduce(void *h, int group, void **tensors, size_t n, int op, char *err,
                         size_t errlen) {
  return guarded<int>(err, errlen, 1, [&]() -> int {
    auto *g = static_cast<Group *>(h);
    auto &pg = group == 0 ? g->ctrl : g->data;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    works.reserve(n);
    c10d::AllreduceOptions opts;
    opts.reduceOp = reduce_op(op);
    opts.timeout = g->timeout;
    for (size_t i = 0; i < n; ++i) {
      std::vector<at::Tensor> one{*static_cast<at::Tensor *>(tensors[i])};
      works.push_back(pg->allreduce(one, opts));
    }
    for (auto &w : works) w->wait(g->timeout);
    return 0;
  });
}

// Broadcast a tensor in place from `root`.
int ddgsd_dist_broadcast(void *h, int group, void *tensor, int root, char *err, size_t errlen) {
  return guarded<int>(err, errlen, 1, [&]() -> int {
    auto *g = static_cast<Group *>(h);
    auto &pg = group == 0 ? g->ctrl : g->data;
    std::vector<at::Tensor> one{*static_cast<at::Tensor *>(tensor)};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g->timeout;
    pg->broadcast(one, opts)->wait(g->timeout);
    return 0;
  });
}

// A barrier of the control group.
int ddgsd_dist_barrier(void *h, char *err, size_t errlen) {
  return guarded<int>(err, errlen, 1, [&]() -> int {
    auto *g = static_cast<Group *>(h);
    c10d::BarrierOptions opts;
    opts.timeout = g->timeout;
    g->ctrl->barrier(opts)->wait(g->timeout);
    return 0;
  });
}

// Store: set key = value (bytes).
int ddgsd_dist_store_set(void *h, const char *key, const char *value, size_t len, char *err,
                         size_t errlen) {
  return guarded<int>(err, errlen, -1, [&]() -> int {
    auto *g = static_cast<Group *>(h);
    std::vector<uint8_t> v(value, value + len);
    g->store->set(std::string(key), v);
    return 0;
  });
}

// Store: whether key exists (1, 0), -1 when the store cannot be reached.
int ddgsd_dist_store_check(void *h, const char *key, char *err, size_t errlen) {
  return guarded<int>(err, errlen, -1, [&]() -> int {
    auto *g = static_cast<Group *>(h);
    return g->store->check({std::string(key)}) ? 1 : 0;
  });
}

// Store: the value of an existing key into buf (up to len bytes); returns
// its length, or -1 on error.
long ddgsd_dist_store_get(void *h, const char *key, char *buf, size_t len, char *err,
                          size_t errlen) {
  return guarded<long>(err, errlen, -1, [&]() -> long {
    auto *g = static_cast<Group *>(h);
    auto v = g->store->get(std::string(key));
    size_t n = v.size() < len ? v.size() : len;
    if (n > 0) std::memcpy(buf, v.data(), n);
    return static_cast<long>(v.size());
  });
}

}  // extern "C"
