#include <cstdlib>
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
  void* p = std::aligned_alloc(64, rounded);
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
