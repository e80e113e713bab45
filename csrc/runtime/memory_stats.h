// Allocator counters reported by memory.stats(): one set per device.
#pragma once
#include <atomic>
#include <cstdint>

namespace attn {

struct MemoryStats {
  int64_t allocatedBytes = 0;  // held by live storages
  int64_t reservedBytes = 0;   // obtained from the system/driver (allocated + cached)
  int64_t peakAllocatedBytes = 0;
  int64_t liveStorages = 0;
  int64_t allocations = 0;  // total allocate() calls
  int64_t cacheHits = 0;    // allocate() calls served from the cache
};

}  // namespace attn
