// Launch of the paged decode kernels (16-bit and quantized cache): grid (CTA rows, splits), the
// pipeline depth, and, with 2..16 splits on sm_90+, one thread block cluster per CTA row so that
// the splits merge through distributed shared memory (split_combine.cuh, clusterCombineRows)
// instead of a global workspace, a fence and an arrival counter.
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "../check.h"
#include "paged_internal.h"

namespace attn::cuda::paged {

// ATTN_DECODE_CLUSTER=0 turns the cluster combine off (A/B timing); anything else leaves it on.
inline bool decodeClusterEnabled() {
  static const bool on = [] {
    const char* v = std::getenv("ATTN_DECODE_CLUSTER");
    return !(v && v[0] == '0');
  }();
  return on;
}

// A decode launch whose CTA rows are clusters of `cluster` splits (grid.y): the configuration and
// the cluster attribute it points at, kept together.
struct SplitClusterLaunch {
  cudaLaunchAttribute attr{};
  cudaLaunchConfig_t cfg{};
  SplitClusterLaunch(dim3 grid, int cluster, int smem, cudaStream_t stream) {
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = 1;
    attr.val.clusterDim.y = static_cast<unsigned>(cluster);
    attr.val.clusterDim.z = 1;
    cfg.gridDim = grid;
    cfg.blockDim = dim3(kDecodeThreads);
    cfg.dynamicSmemBytes = static_cast<size_t>(smem);
    cfg.stream = stream;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
  }
  SplitClusterLaunch(const SplitClusterLaunch&) = delete;  // cfg points into this object
  SplitClusterLaunch& operator=(const SplitClusterLaunch&) = delete;
};

// Raises the kernel's dynamic shared memory limit to `smem` on `device` once: a decode call's host
// time is a few microseconds, and the attribute call is a driver round trip every time.
template <typename Kernel>
void allowDecodeSmem(Kernel kernel, int smem, int device) {
  if (smem <= 48 * 1024) return;
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, int> allowed;
  const auto key = std::make_pair(reinterpret_cast<const void*>(kernel), device);
  std::lock_guard<std::mutex> lock(mu);
  int& have = allowed[key];
  if (have >= smem) return;
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  have = smem;
}

// Clusters of `cluster` CTAs that can be resident at once for this kernel and shared memory
// (cached: the query costs more than a decode launch's host work).
template <typename Kernel>
int maxActiveDecodeClusters(Kernel kernel, int cluster, int smem, int device) {
  static std::mutex mu;
  static std::map<std::tuple<const void*, int, int, int>, int> cache;
  const auto key = std::make_tuple(reinterpret_cast<const void*>(kernel), device, cluster, smem);
  std::lock_guard<std::mutex> lock(mu);
  const auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cluster > 8) ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  allowDecodeSmem(kernel, smem, device);
  const SplitClusterLaunch launch(dim3(1, static_cast<unsigned>(cluster)), cluster, smem, nullptr);
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, kernel, &launch.cfg) != cudaSuccess) {
    (void)cudaGetLastError();  // not supported here: no clusters
    n = 0;
  }
  cache.emplace(key, n);
  return n;
}

// Launches `kernel` over (batch x kv heads x row blocks, splits). A grid that fits the SMs with
// one CTA each runs `max_stages` (the SM's shared memory for one CTA), otherwise `stages`
// (smem_of(stages) bytes per CTA). With 2..16 splits, compute capability 9+ and every cluster
// resident at once, the splits of a CTA row form a cluster (a.cluster = 1); otherwise the split
// partials go through the workspace (a.counters: fused combine, else combine.cu).
template <typename Kernel, typename SmemOf>
void launchDecodeGrid(Kernel kernel, DecodeArgs a, int stages, int max_stages, SmemOf smem_of, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.batch) * a.heads_kv * a.mblocks, a.num_splits);
  const bool alone = static_cast<int64_t>(grid.x) * grid.y <= a.num_sms;
  a.stages = alone ? max_stages : stages;
  a.cluster = 0;
  const int S = a.num_splits;
  int device = 0;
  ATTN_CUDA_CHECK(cudaGetDevice(&device));
  if (S >= 2 && S <= 16 && a.counters != nullptr && decodeClusterEnabled()) {
    int major = 0;
    ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    // Only at the pipeline depth chosen above: a cluster launch that needs the shallower shared-SM
    // depth to fit lost more than the combine saves (H100, 1 x 8k, 16 splits: 17.6 vs 15.0 us).
    if (major >= 9 && maxActiveDecodeClusters(kernel, S, smem_of(a.stages), device) >= static_cast<int>(grid.x)) a.cluster = 1;
  }
  const int smem = smem_of(a.stages);
  allowDecodeSmem(kernel, smem, device);
  if (!a.cluster) {
    kernel<<<grid, kDecodeThreads, smem, stream>>>(a);
    ATTN_CUDA_CHECK_LAUNCH();
    return;
  }
  const SplitClusterLaunch launch(grid, S, smem, stream);
  const cudaError_t err = cudaLaunchKernelEx(&launch.cfg, kernel, a);
  if (err != cudaSuccess) (void)cudaGetLastError();  // a failed launch must not surface in a later op's check
  ATTN_CUDA_CHECK(err);
}

}  // namespace attn::cuda::paged
