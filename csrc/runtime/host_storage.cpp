#include <cstdlib>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <mutex>
#include <string>

#include "../common/error.h"
#include "storage.h"

namespace attn {
namespace {

std::mutex g_mu;
MemoryStats g_stats;

class HostStorage final : public Storage {
 public:
  HostStorage(void* p, size_t bytes) : Storage(p, bytes, Device{}) {}
  ~HostStorage() override {
    std::free(data());
    std::lock_guard<std::mutex> lock(g_mu);
    g_stats.allocatedBytes -= static_cast<int64_t>(bytes());
    g_stats.reservedBytes -= static_cast<int64_t>(bytes());
    g_stats.liveStorages -= 1;
  }
};

}  // namespace

StoragePtr allocateHost(size_t bytes) {
  size_t rounded = ((bytes == 0 ? 1 : bytes) + 63) / 64 * 64;
  size_t align = 64;
#if defined(__linux__)
  // Large buffers (a KV cache's page pool, long K/V) in transparent huge pages where the kernel
  // grants them on request (madvise mode): the CPU kernels walk pages of a pool scattered over
  // many 4 KB pages, and the TLB misses cost 10-20% of a decode step (docs/perf.md, session 15).
  constexpr size_t kHuge = size_t{2} << 20;
  if (rounded >= 2 * kHuge) {
    align = kHuge;
    rounded = (rounded + kHuge - 1) / kHuge * kHuge;
  }
#endif
  void* p = std::aligned_alloc(align, rounded);
#if defined(__linux__)
  if (p && align == kHuge) madvise(p, rounded, MADV_HUGEPAGE);
#endif
  if (!p) throwRange("out of host memory allocating " + std::to_string(bytes) + " bytes");
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_stats.allocatedBytes += static_cast<int64_t>(bytes);
    g_stats.reservedBytes += static_cast<int64_t>(bytes);
    if (g_stats.allocatedBytes > g_stats.peakAllocatedBytes) g_stats.peakAllocatedBytes = g_stats.allocatedBytes;
    g_stats.liveStorages += 1;
    g_stats.allocations += 1;
  }
  return std::make_shared<HostStorage>(p, bytes);
}

MemoryStats hostMemoryStats() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_stats;
}

}  // namespace attn
