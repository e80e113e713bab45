// copyPages: one launch copies page_bytes for every (pair, plane): CTA i * planes + plane copies
// pool[plane][src[i]] -> pool[plane][dst[i]] with 16-byte (or narrower, if the sizes ask for it)
// vectors, four loads in flight per thread. Pairs with a page index outside
// [0, plane_stride_bytes / page_bytes) are skipped. Pairs must not overlap (no page may be both a
// source and a destination in one call).
// writeTableEntries: the other half of page-table maintenance, the block-table entries an append
// stores before its tokens, one thread per entry.
#include <cstdint>
#include <string>

#include "../../common/error.h"
#include "../check.h"
#include "paged_attention.h"

namespace attn::cuda {
namespace {

constexpr int kCopyThreads = 256;
constexpr int kCopyUnroll = 4;

template <typename V>
__global__ void __launch_bounds__(kCopyThreads) copyPagesKernel(char* __restrict__ pool, const int32_t* __restrict__ src,
                                                                 const int32_t* __restrict__ dst, int64_t page_bytes,
                                                                 int64_t planes, int64_t plane_stride, int64_t num_pages) {
  const int64_t item = blockIdx.x;
  const int64_t i = item / planes;
  const int64_t plane = item - i * planes;
  const int64_t s = __ldg(src + i), d = __ldg(dst + i);
  if (s < 0 || s >= num_pages || d < 0 || d >= num_pages) return;
  const V* from = reinterpret_cast<const V*>(pool + plane * plane_stride + s * page_bytes);
  V* to = reinterpret_cast<V*>(pool + plane * plane_stride + d * page_bytes);
  const int64_t n = page_bytes / static_cast<int64_t>(sizeof(V));
  for (int64_t base = threadIdx.x; base < n; base += kCopyThreads * kCopyUnroll) {
    V r[kCopyUnroll];
#pragma unroll
    for (int k = 0; k < kCopyUnroll; ++k) {
      const int64_t idx = base + k * kCopyThreads;
      if (idx < n) r[k] = from[idx];
    }
#pragma unroll
    for (int k = 0; k < kCopyUnroll; ++k) {
      const int64_t idx = base + k * kCopyThreads;
      if (idx < n) to[idx] = r[k];
    }
  }
}

constexpr int kScatterThreads = 128;

__global__ void __launch_bounds__(kScatterThreads) scatterInt32Kernel(int32_t* __restrict__ table, const int32_t* __restrict__ idx,
                                                                      const int32_t* __restrict__ values, int n) {
  const int i = blockIdx.x * kScatterThreads + threadIdx.x;
  if (i < n) table[__ldg(idx + i)] = __ldg(values + i);
}

}  // namespace

void writeTableEntries(int32_t* table, const int32_t* idx, const int32_t* values, int n, cudaStream_t stream) {
  if (n < 0) throwRange("writeTableEntries: negative count");
  if (n == 0) return;
  if (!table || !idx || !values) throwRange("writeTableEntries: a required pointer is null");
  scatterInt32Kernel<<<(n + kScatterThreads - 1) / kScatterThreads, kScatterThreads, 0, stream>>>(table, idx, values, n);
  ATTN_CUDA_CHECK_LAUNCH();
}

void copyPages(const PageCopyParams& p, cudaStream_t stream) {
  if (p.count < 0 || p.planes < 0 || p.page_bytes < 0) throwRange("copyPages: negative count, planes or page_bytes");
  if (p.count == 0 || p.planes == 0 || p.page_bytes == 0) return;
  if (!p.pool || !p.src || !p.dst) throwRange("copyPages: a required pointer is null");
  if (p.plane_stride_bytes < p.page_bytes) throwRange("copyPages: plane_stride_bytes is smaller than page_bytes");
  const int64_t items = static_cast<int64_t>(p.count) * p.planes;
  if (items > 0x7fffffff) throwRange("copyPages: count * planes exceeds the grid limit");
  const int64_t num_pages = p.plane_stride_bytes / p.page_bytes;

  uint64_t align = 16;
  for (uint64_t v : {static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p.pool)), static_cast<uint64_t>(p.page_bytes),
                     static_cast<uint64_t>(p.plane_stride_bytes)}) {
    while (align > 1 && v % align != 0) align >>= 1;
  }
  char* pool = static_cast<char*>(p.pool);
  const dim3 grid(static_cast<unsigned>(items));
  switch (align) {
    case 16:
      copyPagesKernel<uint4><<<grid, kCopyThreads, 0, stream>>>(pool, p.src, p.dst, p.page_bytes, p.planes,
                                                                p.plane_stride_bytes, num_pages);
      break;
    case 8:
      copyPagesKernel<uint2><<<grid, kCopyThreads, 0, stream>>>(pool, p.src, p.dst, p.page_bytes, p.planes,
                                                                p.plane_stride_bytes, num_pages);
      break;
    case 4:
      copyPagesKernel<uint32_t><<<grid, kCopyThreads, 0, stream>>>(pool, p.src, p.dst, p.page_bytes, p.planes,
                                                                   p.plane_stride_bytes, num_pages);
      break;
    default:
      copyPagesKernel<unsigned char><<<grid, kCopyThreads, 0, stream>>>(pool, p.src, p.dst, p.page_bytes, p.planes,
                                                                        p.plane_stride_bytes, num_pages);
      break;
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda
