// Sparse decode over the paged cache (csrc/common/page_topk_params.h), three small kernels:
//  - pageSummarizeKernel: after an append, the channel-wise min/max of K of each written page
//    (one CTA per (page, kv head), threads over channels, slots walked in order);
//  - pageScoreKernel: the Quest upper bound of every page against the decode query (one warp per
//    page, each lane a contiguous run of D/32 channels, every kv head's loads issued before use so
//    the summary read streams at bandwidth even at batch 1);
//  - pageSelectKernel: per sequence, the top k - 2 candidate pages by radix select on the score
//    keys (4 passes of 8 bits, warp-aggregated histogram), ties to the lower page index, then an
//    order-preserving compaction into the sequence's row of the compacted block table.
// No host round trip: the decode kernel reads the compacted table right after, on the same stream.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "../../common/error.h"
#include "../check.h"
#include "page_topk.h"

namespace attn::cuda {
namespace {

__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float toFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T fromFloat(float x);
template <>
__device__ __forceinline__ float fromFloat<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half fromFloat<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// ---- summaries -------------------------------------------------------------------------------

constexpr int kSummaryThreads = 128;

template <typename T>
__global__ void __launch_bounds__(kSummaryThreads) pageSummarizeKernel(const PageSummaryParams p) {
  const int i = blockIdx.x;
  const int h = blockIdx.y;
  const int64_t page = p.block_table[static_cast<int64_t>(p.rows[i]) * p.block_table_stride + p.logical[i]];
  const int s0 = max(p.slot_begin[i], 0), s1 = min(p.slot_end[i], p.page_size);
  if (page < 0 || s1 <= s0) return;
  const T* k = static_cast<const T*>(p.k_pages) + page * p.page_stride + static_cast<int64_t>(h) * p.page_head_stride;
  T* mn = static_cast<T*>(p.sum_min) + page * p.sum_page_stride + static_cast<int64_t>(h) * p.head_dim;
  T* mx = static_cast<T*>(p.sum_max) + page * p.sum_page_stride + static_cast<int64_t>(h) * p.head_dim;
  for (int c = threadIdx.x; c < p.head_dim; c += kSummaryThreads) {
    float lo = INFINITY, hi = -INFINITY;
    if (s0 > 0) {  // fold the new slots into the summary of the slots before them
      lo = toFloat(mn[c]);
      hi = toFloat(mx[c]);
    }
    for (int s = s0; s < s1; ++s) {
      const float x = toFloat(k[static_cast<int64_t>(s) * p.head_dim + c]);
      lo = fminf(lo, x);
      hi = fmaxf(hi, x);
    }
    // Exact: the min and max of stored values are stored values.
    mn[c] = fromFloat<T>(lo);
    mx[c] = fromFloat<T>(hi);
  }
}

// ---- scores ------------------------------------------------------------------------------------

constexpr int kScoreWarps = 4;  // one page per warp
constexpr int kHeadsPerBatch = 4;  // kv heads whose summary loads are in flight together

template <int N>
using Raw16 = std::conditional_t<N == 2, uint32_t, std::conditional_t<N == 4, uint2, uint4>>;

// N consecutive 16-bit elements (N * 2 bytes, aligned to that) as floats.
template <typename T, int N>
__device__ __forceinline__ void loadRun(const T* src, float (&out)[N]) {
  static_assert(N == 2 || N == 4 || N == 8, "4, 8 or 16 bytes");
  const Raw16<N> raw = *reinterpret_cast<const Raw16<N>*>(src);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < N; ++j) out[j] = toFloat(e[j]);
}

__device__ __forceinline__ uint32_t scoreKey(float s) {
  if (s != s) return 0u;  // NaN: lowest, as pageScoreKey
  const uint32_t bits = __float_as_uint(s);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__device__ __forceinline__ int pagesOf(const PageTopKParams& p, int b) {
  return (max(p.seq_lens[b], 0) + p.page_size - 1) / p.page_size;
}

template <typename T, int D>
__global__ void __launch_bounds__(kScoreWarps * 32) pageScoreKernel(const PageTopKParams p, int chunks) {
  constexpr int kC = D / 32;  // channels per lane
  const int b = blockIdx.x / chunks;
  const int page = (blockIdx.x - b * chunks) * kScoreWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  const int n = pagesOf(p, b);
  if (n <= p.k || page >= n) return;  // uniform per warp; every page kept: no scores needed
  const int row = p.block_table_rows != nullptr ? p.block_table_rows[b] : b;
  const int64_t phys = p.block_table[static_cast<int64_t>(row) * p.block_table_stride + page];
  const int group = p.heads_q / p.heads_kv;
  const T* smin = static_cast<const T*>(p.sum_min) + phys * p.sum_page_stride + lane * kC;
  const T* smax = static_cast<const T*>(p.sum_max) + phys * p.sum_page_stride + lane * kC;
  const T* q = static_cast<const T*>(p.q) + static_cast<int64_t>(b) * p.q_row_stride + lane * kC;

  float acc = 0.0f;
  for (int hk0 = 0; hk0 < p.heads_kv; hk0 += kHeadsPerBatch) {
    float mn[kHeadsPerBatch][kC], mx[kHeadsPerBatch][kC];
#pragma unroll
    for (int u = 0; u < kHeadsPerBatch; ++u) {
      if (hk0 + u < p.heads_kv) {
        loadRun<T, kC>(smin + (hk0 + u) * D, mn[u]);
        loadRun<T, kC>(smax + (hk0 + u) * D, mx[u]);
      }
    }
#pragma unroll
    for (int u = 0; u < kHeadsPerBatch; ++u) {
      const int g_end = hk0 + u < p.heads_kv ? group : 0;
      for (int g = 0; g < g_end; ++g) {
        float qv[kC];
        loadRun<T, kC>(q + static_cast<int64_t>((hk0 + u) * group + g) * p.q_head_stride, qv);
#pragma unroll
        for (int j = 0; j < kC; ++j) acc += fmaxf(qv[j] * mn[u][j], qv[j] * mx[u][j]);
      }
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) p.scores[static_cast<int64_t>(b) * p.max_pages + page] = acc;
}

// ---- selection -------------------------------------------------------------------------------

constexpr int kSelectThreads = 256;
constexpr int kSelectWarps = kSelectThreads / 32;

// Exclusive prefix sum of x over the CTA, and the CTA total. Every thread must call it.
__device__ __forceinline__ void blockScan(int x, int& excl, int& total, int* s_warp) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int incl = x;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int v = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += v;
  }
  if (lane == 31) s_warp[warp] = incl;
  __syncthreads();
  int before = 0;
  total = 0;
#pragma unroll
  for (int w = 0; w < kSelectWarps; ++w) {
    const int t = s_warp[w];
    if (w < warp) before += t;
    total += t;
  }
  excl = before + incl - x;
  __syncthreads();  // s_warp is reused by the next scan
}

__global__ void __launch_bounds__(kSelectThreads) pageSelectKernel(const PageTopKParams p) {
  __shared__ int hist[256];
  __shared__ int s_warp[kSelectWarps];
  __shared__ int s_digit, s_remaining;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int b = blockIdx.x;
  const int n = pagesOf(p, b);
  const int row = p.block_table_rows != nullptr ? p.block_table_rows[b] : b;
  const int32_t* bt = p.block_table + static_cast<int64_t>(row) * p.block_table_stride;
  int32_t* out = p.out_table + static_cast<int64_t>(b) * p.k;
  if (n <= p.k) {  // every page, in order
    for (int j = tid; j < p.k; j += kSelectThreads) out[j] = j < n ? bt[j] : -1;
    return;
  }
  const float* sc = p.scores + static_cast<int64_t>(b) * p.max_pages;
  const int m = p.k - 2;  // picked among the n - 2 > m candidates 1 .. n - 2

  // Radix select of the m-th largest key: after the passes, keys > prefix are in, and the first
  // `remaining` keys == prefix (by page index) complete the m.
  uint32_t prefix = 0, pmask = 0;
  int remaining = m;
  if (m > 0) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      hist[tid] = 0;  // kSelectThreads == 256 bins
      __syncthreads();
      for (int base = 1; base < n - 1; base += kSelectThreads) {
        const int i = base + tid;
        int d = 256;  // no bin
        if (i < n - 1) {
          const uint32_t key = scoreKey(sc[i]);
          if ((key & pmask) == prefix) d = static_cast<int>((key >> shift) & 0xffu);
        }
        // Scores cluster in their top bits: aggregate equal bins per warp before the atomic.
        const unsigned peers = __match_any_sync(0xffffffffu, d);
        if (d != 256 && lane == __ffs(peers) - 1) atomicAdd(&hist[d], __popc(peers));
      }
      __syncthreads();
      if (warp == 0) {
        // Lane l holds bins 255 - 8l down to 248 - 8l: the first lane whose running count (from
        // the top bin) reaches `remaining` holds the digit.
        int cnt[8], lane_sum = 0;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          cnt[j] = hist[255 - lane * 8 - j];
          lane_sum += cnt[j];
        }
        int incl = lane_sum;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
          const int v = __shfl_up_sync(0xffffffffu, incl, o);
          if (lane >= o) incl += v;
        }
        const unsigned hit = __ballot_sync(0xffffffffu, incl >= remaining);
        if (lane == __ffs(hit) - 1) {
          int cum = incl - lane_sum;
          for (int j = 0; j < 8; ++j) {
            if (cum + cnt[j] >= remaining) {
              s_digit = 255 - lane * 8 - j;
              s_remaining = remaining - cum;
              break;
            }
            cum += cnt[j];
          }
        }
      }
      __syncthreads();
      prefix |= static_cast<uint32_t>(s_digit) << shift;
      pmask |= 0xffu << shift;
      remaining = s_remaining;
      __syncthreads();  // s_digit / hist are rewritten by the next pass
    }
  }

  // Order-preserving compaction of the chosen candidates into out[1 .. m].
  int eq_seen = 0, sel_seen = 0;
  for (int base = 1; base < n - 1; base += kSelectThreads) {
    const int i = base + tid;
    bool gt = false, eq = false;
    if (m > 0 && i < n - 1) {
      const uint32_t key = scoreKey(sc[i]);
      gt = key > prefix;
      eq = key == prefix;
    }
    int eq_excl, eq_total, sel_excl, sel_total;
    blockScan(eq ? 1 : 0, eq_excl, eq_total, s_warp);
    const bool sel = gt || (eq && eq_seen + eq_excl < remaining);
    blockScan(sel ? 1 : 0, sel_excl, sel_total, s_warp);
    if (sel) out[1 + sel_seen + sel_excl] = bt[i];
    eq_seen += eq_total;
    sel_seen += sel_total;
  }
  if (tid == 0) {
    out[0] = bt[0];
    out[p.k - 1] = bt[n - 1];
  }
}

template <typename T>
void launchSummarize(const PageSummaryParams& p, cudaStream_t stream) {
  pageSummarizeKernel<T><<<dim3(p.count, p.heads_kv), kSummaryThreads, 0, stream>>>(p);
}

template <typename T>
void launchScores(const PageTopKParams& p, cudaStream_t stream) {
  const int chunks = (p.max_pages + kScoreWarps - 1) / kScoreWarps;
  const int64_t blocks = static_cast<int64_t>(chunks) * p.batch;
  if (blocks > 0x7fffffff) throwRange("pageTopK: batch * pages exceeds the grid limit");
  const dim3 grid(static_cast<unsigned>(blocks));
  switch (p.head_dim) {
    case 64: pageScoreKernel<T, 64><<<grid, kScoreWarps * 32, 0, stream>>>(p, chunks); break;
    case 128: pageScoreKernel<T, 128><<<grid, kScoreWarps * 32, 0, stream>>>(p, chunks); break;
    case 256: pageScoreKernel<T, 256><<<grid, kScoreWarps * 32, 0, stream>>>(p, chunks); break;
    default: throwRange("pageTopK: head_dim " + std::to_string(p.head_dim) + " is not supported (64, 128 or 256)");
  }
}

}  // namespace

void pageSummarize(const PageSummaryParams& p, cudaStream_t stream) {
  if (p.count <= 0 || p.heads_kv <= 0) return;
  if (p.heads_kv > 65535) throwRange("pageSummarize: at most 65535 kv heads");
  if (!p.k_pages || !p.sum_min || !p.sum_max || !p.block_table || !p.rows || !p.logical || !p.slot_begin || !p.slot_end)
    throwRange("pageSummarize: a required pointer is null");
  switch (p.dtype) {
    case DType::F32: launchSummarize<float>(p, stream); break;
    case DType::F16: launchSummarize<__half>(p, stream); break;
    case DType::BF16: launchSummarize<__nv_bfloat16>(p, stream); break;
    default: throwRange(std::string("pageSummarize: unsupported dtype ") + dtypeName(p.dtype));
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

void pageTopK(const PageTopKParams& p, cudaStream_t stream) {
  if (p.batch <= 0) return;
  if (p.k < 1 || p.max_pages < 1 || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) throwRange("pageTopK: bad k, pages or heads");
  if (!p.q || !p.sum_min || !p.sum_max || !p.block_table || !p.seq_lens || !p.out_table || !p.scores)
    throwRange("pageTopK: a required pointer is null");
  switch (p.dtype) {
    case DType::F16: launchScores<__half>(p, stream); break;
    case DType::BF16: launchScores<__nv_bfloat16>(p, stream); break;
    default: throwRange(std::string("pageTopK: unsupported dtype ") + dtypeName(p.dtype) + " (f16 or bf16)");
  }
  ATTN_CUDA_CHECK_LAUNCH();
  pageSelectKernel<<<p.batch, kSelectThreads, 0, stream>>>(p);
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda
