// Launch of the paged decode kernels (16-bit and quantized cache): grid (CTA rows, splits), the
// pipeline depth, and, with 2..16 splits on sm_90+, one thread block cluster per CTA row so that
// the splits merge through distributed shared memory (split_combine.cuh, clusterCombineRows)
// instead of a global workspace, a fence and an arrival counter.
#pragma once
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "../../common/env_flag.h"
#include "../check.h"
#include "paged_internal.h"

namespace attn::cuda::paged {

// Tuning switches for A/B timing, read once: ATTN_DECODE_CLUSTER=0 turns the cluster combine off,
// ATTN_DECODE_PDL=0 the programmatic dependent launch, ATTN_DECODE_KEYS_ON_M=0 the keys-on-M tile
// math (decode CTAs of <= 8 pairs then run the pairs-on-M math; also for tests); anything else
// leaves them on.
inline bool decodeClusterEnabled() {
  static const bool on = envFlag("ATTN_DECODE_CLUSTER", true);
  return on;
}
inline bool decodePdlEnabled() {
  static const bool on = envFlag("ATTN_DECODE_PDL", true);
  return on;
}
inline bool decodeKeysOnMEnabled() {
  static const bool on = envFlag("ATTN_DECODE_KEYS_ON_M", true);
  return on;
}

// A decode launch configuration and the attributes it points at, kept together: programmatic
// stream serialization (the grid may start while the previous kernel on the stream finishes; the
// kernels wait for it before their first global read) and, with cluster > 1, CTA rows that are
// clusters of `cluster` splits (grid.y).
struct DecodeLaunch {
  cudaLaunchAttribute attrs[2]{};
  cudaLaunchConfig_t cfg{};
  DecodeLaunch(dim3 grid, int smem, cudaStream_t stream, bool pdl, int cluster) {
    cfg.gridDim = grid;
    cfg.blockDim = dim3(kDecodeThreads);
    cfg.dynamicSmemBytes = static_cast<size_t>(smem);
    cfg.stream = stream;
    cfg.attrs = attrs;
    if (pdl) {
      cudaLaunchAttribute& a = attrs[cfg.numAttrs++];
      a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
      a.val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster > 1) {
      cudaLaunchAttribute& a = attrs[cfg.numAttrs++];
      a.id = cudaLaunchAttributeClusterDimension;
      a.val.clusterDim.x = 1;
      a.val.clusterDim.y = static_cast<unsigned>(cluster);
      a.val.clusterDim.z = 1;
    }
  }
  DecodeLaunch(const DecodeLaunch&) = delete;  // cfg points into this object
  DecodeLaunch& operator=(const DecodeLaunch&) = delete;
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
  const DecodeLaunch launch(dim3(1, static_cast<unsigned>(cluster)), smem, nullptr, false, cluster);
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
// partials go through the workspace (a.counters: fused combine, else combine.cu). On compute
// capability 9+ the launch is a programmatic dependent of the previous kernel on the stream.
template <typename Kernel, typename SmemOf>
void launchDecodeGrid(Kernel kernel, DecodeArgs a, int stages, int max_stages, SmemOf smem_of, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.batch) * a.heads_kv * a.mblocks, a.num_splits);
  const bool alone = static_cast<int64_t>(grid.x) * grid.y <= a.num_sms;
  a.stages = alone ? max_stages : stages;
  a.cluster = 0;
  const int S = a.num_splits;
  int device = 0, major = 0;
  ATTN_CUDA_CHECK(cudaGetDevice(&device));
  ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  // Only at the pipeline depth chosen above: a cluster launch that needs the shallower shared-SM
  // depth to fit lost more than the combine saves (H100, 1 x 8k, 16 splits: 17.6 vs 15.0 us).
  if (major >= 9 && S >= 2 && S <= 16 && a.counters != nullptr && decodeClusterEnabled() &&
      maxActiveDecodeClusters(kernel, S, smem_of(a.stages), device) >= static_cast<int>(grid.x))
    a.cluster = 1;
  const int smem = smem_of(a.stages);
  allowDecodeSmem(kernel, smem, device);
  const DecodeLaunch launch(grid, smem, stream, major >= 9 && decodePdlEnabled(), a.cluster ? S : 1);
  const cudaError_t err = cudaLaunchKernelEx(&launch.cfg, kernel, a);
  if (err != cudaSuccess) (void)cudaGetLastError();  // a failed launch must not surface in a later op's check
  ATTN_CUDA_CHECK(err);
}

}  // namespace attn::cuda::paged
