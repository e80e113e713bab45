// Routes an op to its device: CPU work goes on the CPU queue, CUDA work on the device's stream.
// This is the only file of the binding that knows whether CUDA was compiled in.
#pragma once
#include <functional>
#include <string>

#include "runtime/cpu_queue.h"
#include "runtime/device.h"
#include "runtime/fence.h"
#include "runtime/memory_stats.h"
#include "runtime/storage.h"

#ifdef ATTN_WITH_CUDA
#include <cuda_runtime.h>
#else
using cudaStream_t = struct CUstream_st*;
#endif

namespace binding {

struct CudaTarget {
  int device = 0;
  int sm = 0;
  int multiprocessors = 0;
  cudaStream_t stream = nullptr;
};

bool builtWithCuda();
std::string cudaUnavailableReason();  // empty when usable
int cudaDeviceCount();

attn::StoragePtr allocate(const attn::Device& d, size_t bytes);
// CUDA devices only: the device's split counters, at least n (see attn::cuda::Context::splitCounters).
unsigned* splitCounters(const attn::Device& d, size_t n);
attn::FencePtr fence(const attn::Device& d);
attn::MemoryStats memoryStats(const attn::Device& d);
void emptyCache(const attn::Device& d);

// Enqueues a CPU task, or calls cudaFn with the device made current (it launches on target.stream).
void launch(const attn::Device& d, std::function<void()> cpuTask, const std::function<void(const CudaTarget&)>& cudaFn);

// Stream-ordered host -> device-memory copy of `bytes` (copied before returning).
void upload(const attn::Device& d, const attn::StoragePtr& dst, size_t dstOffset, std::vector<uint8_t> bytes);
// Stream-ordered device-memory -> host copy; `out` is filled when the fence's wait() returns.
attn::FencePtr download(const attn::StoragePtr& src, size_t srcOffset, size_t bytes, std::shared_ptr<std::vector<uint8_t>> out);

}  // namespace binding
