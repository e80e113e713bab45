#include "device_exec.h"

#include <cstring>
#include <memory>

#include "common/error.h"

#ifdef ATTN_WITH_CUDA
#include "runtime/cuda/cuda_context.h"
#endif

namespace binding {

#ifdef ATTN_WITH_CUDA
namespace {
attn::cuda::Context& ctx(const attn::Device& d) { return attn::cuda::Context::get(d.index); }
}  // namespace
bool builtWithCuda() { return true; }
std::string cudaUnavailableReason() { return attn::cuda::unavailableReason(); }
int cudaDeviceCount() { return attn::cuda::deviceCount(); }
#else
namespace {
[[noreturn]] void noCuda(const attn::Device& d) {
  attn::throwRange("device: " + d.str() + " is not available: " ATTN_CUDA_REASON);
}
}  // namespace
bool builtWithCuda() { return false; }
std::string cudaUnavailableReason() { return ATTN_CUDA_REASON; }
int cudaDeviceCount() { return 0; }
#endif

attn::StoragePtr allocate(const attn::Device& d, size_t bytes) {
  if (!d.isCuda()) return attn::allocateHost(bytes);
#ifdef ATTN_WITH_CUDA
  return ctx(d).allocate(bytes);
#else
  noCuda(d);
#endif
}

unsigned* splitCounters(const attn::Device& d, size_t n) {
#ifdef ATTN_WITH_CUDA
  return ctx(d).splitCounters(n);
#else
  noCuda(d);
#endif
}

attn::FencePtr fence(const attn::Device& d) {
  if (!d.isCuda()) return attn::cpuFence();
#ifdef ATTN_WITH_CUDA
  return ctx(d).fence();
#else
  noCuda(d);
#endif
}

attn::MemoryStats memoryStats(const attn::Device& d) {
  if (!d.isCuda()) return attn::hostMemoryStats();
#ifdef ATTN_WITH_CUDA
  return ctx(d).stats();
#else
  noCuda(d);
#endif
}

void emptyCache(const attn::Device& d) {
  if (!d.isCuda()) return;  // host storages are freed at once, nothing is cached
#ifdef ATTN_WITH_CUDA
  ctx(d).emptyCache();
#else
  noCuda(d);
#endif
}

void launch(const attn::Device& d, std::function<void()> cpuTask, const std::function<void(const CudaTarget&)>& cudaFn) {
  if (!d.isCuda()) {
    attn::cpuEnqueue(std::move(cpuTask));
    return;
  }
#ifdef ATTN_WITH_CUDA
  attn::cuda::Context& c = ctx(d);
  c.activate();
  cudaFn(CudaTarget{d.index, c.props().sm, c.props().multiprocessors, c.stream()});
#else
  noCuda(d);
#endif
}

void upload(const attn::Device& d, const attn::StoragePtr& dst, size_t dstOffset, std::vector<uint8_t> bytes) {
  if (!d.isCuda()) {
    auto data = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
    attn::StoragePtr hold = dst;
    attn::cpuEnqueue([hold, dstOffset, data] { std::memcpy(static_cast<char*>(hold->data()) + dstOffset, data->data(), data->size()); });
    return;
  }
#ifdef ATTN_WITH_CUDA
  ctx(d).upload(static_cast<char*>(dst->data()) + dstOffset, bytes.data(), bytes.size());
#else
  noCuda(d);
#endif
}

attn::FencePtr download(const attn::StoragePtr& src, size_t srcOffset, size_t bytes, std::shared_ptr<std::vector<uint8_t>> out) {
  const attn::Device& d = src->device();
  if (!d.isCuda()) {
    attn::StoragePtr hold = src;
    attn::cpuEnqueue([hold, srcOffset, bytes, out] {
      out->resize(bytes);
      std::memcpy(out->data(), static_cast<const char*>(hold->data()) + srcOffset, bytes);
    });
    return attn::cpuFence();
  }
#ifdef ATTN_WITH_CUDA
  return ctx(d).download(src, static_cast<const char*>(src->data()) + srcOffset, bytes, std::move(out));
#else
  noCuda(d);
#endif
}

}  // namespace binding
