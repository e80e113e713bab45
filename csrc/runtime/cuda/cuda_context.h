// Per-device CUDA state: one stream that every op of that device is enqueued on (so the caching
// allocator can hand a freed block to the next op without synchronizing), the caching allocator,
// and pinned staging buffers for uploads and downloads that never block the JS thread.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../fence.h"
#include "../memory_stats.h"
#include "../storage.h"

namespace attn::cuda {

struct DeviceProps {
  std::string name;
  int sm = 0;  // compute capability, e.g. 90
  int multiprocessors = 0;
  int64_t totalMemory = 0;
  int maxSharedMemoryPerBlockOptin = 0;
  int64_t l2CacheBytes = 0;
};

// Number of usable devices; 0 when the driver or a device is missing (see unavailableReason()).
int deviceCount();
// Empty when CUDA is usable; otherwise the CUDA runtime's explanation.
std::string unavailableReason();

class Context {
 public:
  // The context of device `index`, created on first use. Throws RangeError for a bad index.
  static Context& get(int index);

  const DeviceProps& props() const { return props_; }
  cudaStream_t stream() const { return stream_; }
  // Makes this device current on the calling thread (JS main thread or a worker thread).
  void activate() const;

  StoragePtr allocate(size_t bytes);
  MemoryStats stats();
  void emptyCache();

  // Stream-ordered copy of host bytes to device memory; returns once `src` may be reused.
  void upload(void* dst, const void* src, size_t bytes);
  // Stream-ordered copy of device bytes to `out` (resized); complete when the fence's wait() returns.
  FencePtr download(const StoragePtr& keepAlive, const void* src, size_t bytes, std::shared_ptr<std::vector<uint8_t>> out);
  // A fence after everything enqueued on the stream so far.
  FencePtr fence();

  // At least n uint32 counters, zero whenever the stream is idle, owned by the context: split-KV
  // kernels count finished splits in them and the last split resets its counter. Growing keeps
  // the old buffers (a few KB; a launch may still use them) and zeroes the new one on the stream.
  unsigned* splitCounters(size_t n);

  // Called by device storages on destruction: the block goes back to the cache.
  void release(void* ptr, size_t bytes) noexcept;

 private:
  explicit Context(int index);
  struct Impl;
  int index_;
  DeviceProps props_;
  cudaStream_t stream_ = nullptr;
  Impl* impl_;  // process lifetime: contexts are never destroyed (CUDA teardown order at exit)
};

}  // namespace attn::cuda
