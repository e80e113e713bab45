// Sparse decode over the paged cache (csrc/common/page_topk_params.h):
//  - pageSummarizeKernel: after an append, the min/max of K over each written page at the summary
//    channels (one CTA per (page, kv head), threads over channels, slots walked in order);
//  - pageTopKKernel: scoring and selection in one launch. CTAs of 256 threads each score a run of
//    one sequence's candidate pages: the CTA stages P / N (the group's positive / negative query
//    parts per summary channel) in shared memory, then `lanes` lanes per page stream the page's
//    min / max rows in 16-byte loads (four per plane in flight per lane) and dot them with P / N.
//    The last CTA of a sequence to finish (per-sequence counter) radix-selects its k - 2 largest
//    keys from shared memory (8 bits a pass, early exit once the boundary bin is taken whole;
//    ties to the lower page) and writes the order-preserving compacted table row;
//  - channelPartialKernel / channelChooseKernel: a layer's label channels from its first append.
// No host round trip: the decode kernel reads the compacted table right after, on the same stream.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "../../common/error.h"
#include "../check.h"
#include "../common/elem_convert.cuh"
#include "page_topk.h"

namespace attn::cuda {
namespace {

// ---- summaries -------------------------------------------------------------------------------

constexpr int kSummaryThreads = 128;

template <typename T>
__global__ void __launch_bounds__(kSummaryThreads) pageSummarizeKernel(const PageSummaryParams p) {
  const int i = blockIdx.x;
  const int h = blockIdx.y;
  const int64_t page = p.block_table[static_cast<int64_t>(p.rows[i]) * p.block_table_stride + p.logical[i]];
  const int s0 = max(p.slot_begin[i], 0), s1 = min(p.slot_end[i], p.page_size);
  if (page < 0 || s1 <= s0) return;
  const int R = p.sum_dim;
  const T* k = static_cast<const T*>(p.k_pages) + page * p.page_stride + static_cast<int64_t>(h) * p.page_head_stride;
  T* mn = static_cast<T*>(p.sum_min) + page * p.sum_page_stride + static_cast<int64_t>(h) * R;
  T* mx = static_cast<T*>(p.sum_max) + page * p.sum_page_stride + static_cast<int64_t>(h) * R;
  const int32_t* ch = p.channels != nullptr ? p.channels + static_cast<int64_t>(h) * R : nullptr;
  for (int j = threadIdx.x; j < R; j += kSummaryThreads) {
    const int c = ch != nullptr ? ch[j] : j;
    float lo = INFINITY, hi = -INFINITY;
    if (s0 > 0) {  // fold the new slots into the summary of the slots before them
      lo = toFloat(mn[j]);
      hi = toFloat(mx[j]);
    }
    for (int s = s0; s < s1; ++s) {
      const float x = toFloat(k[static_cast<int64_t>(s) * p.head_dim + c]);
      lo = fminf(lo, x);
      hi = fmaxf(hi, x);
    }
    // Exact: the min and max of stored values are stored values.
    mn[j] = fromFloat<T>(lo);
    mx[j] = fromFloat<T>(hi);
  }
}

// ---- scoring and selection ---------------------------------------------------------------------

constexpr int kTopKThreads = 256;
constexpr int kTopKWarps = kTopKThreads / 32;
constexpr int kPnTile = 2048;        // (kv head, summary channel) P / N pairs staged in shared memory at once
constexpr int kSmemKeysMax = 12288;  // candidates whose keys the selection stages in shared memory (48 KB)

// Work split of pageTopKKernel (host-chosen, see launchTopK).
struct TopKGeometry {
  int elems = 0;       // E = heads_kv * sum_dim summary elements per page and plane (a multiple of 8)
  int lanes = 0;       // lanes scoring one page (a power of two <= 32)
  int per_iter = 0;    // pages a CTA scores per iteration: kTopKWarps * 32 / lanes
  int iters = 0;       // iterations per CTA
  int chunks = 0;      // CTAs per sequence (the longest one's), per_iter * iters candidates each
  int smem_keys = 0;   // candidates the selection stages in shared memory (more: read from L2)
};

__device__ __forceinline__ uint32_t scoreKey(float s) {
  if (s != s) return 0u;  // NaN: lowest, as pageScoreKey
  const uint32_t bits = __float_as_uint(s);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__device__ __forceinline__ int pagesOf(const PageTopKParams& p, int b) {
  return (max(p.seq_lens[b], 0) + p.page_size - 1) / p.page_size;
}

template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&out)[8]) {
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) out[j] = toFloat(e[j]);
}

// sum over this lane's vectors v = sub, sub + lanes, ... < vecs (8 elements each) of
// max * P + min * N, with P at pn[8 v ...] and N at pn[n_off + 8 v ...]. Four vectors' loads are
// issued before any is used.
template <typename T>
__device__ __forceinline__ float dotTile(const T* mn, const T* mx, const float* pn, int n_off, int vecs, int sub, int lanes) {
  float acc = 0.0f;
  for (int v0 = sub; v0 < vecs; v0 += 4 * lanes) {
    uint4 a[4], c[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int v = v0 + u * lanes;
      if (v < vecs) {
        a[u] = __ldg(reinterpret_cast<const uint4*>(mn) + v);
        c[u] = __ldg(reinterpret_cast<const uint4*>(mx) + v);
      }
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int v = v0 + u * lanes;
      if (v < vecs) {
        float lo[8], hi[8];
        unpack8<T>(a[u], lo);
        unpack8<T>(c[u], hi);
        const float4 p0 = *reinterpret_cast<const float4*>(pn + 8 * v), p1 = *reinterpret_cast<const float4*>(pn + 8 * v + 4);
        const float4 n0 = *reinterpret_cast<const float4*>(pn + n_off + 8 * v), n1 = *reinterpret_cast<const float4*>(pn + n_off + 8 * v + 4);
        acc += hi[0] * p0.x + lo[0] * n0.x;
        acc += hi[1] * p0.y + lo[1] * n0.y;
        acc += hi[2] * p0.z + lo[2] * n0.z;
        acc += hi[3] * p0.w + lo[3] * n0.w;
        acc += hi[4] * p1.x + lo[4] * n1.x;
        acc += hi[5] * p1.y + lo[5] * n1.y;
        acc += hi[6] * p1.z + lo[6] * n1.z;
        acc += hi[7] * p1.w + lo[7] * n1.w;
      }
    }
  }
  return acc;
}

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
  for (int w = 0; w < kTopKWarps; ++w) {
    const int t = s_warp[w];
    if (w < warp) before += t;
    total += t;
  }
  excl = before + incl - x;
  __syncthreads();  // s_warp is reused by the next scan
}

// One kernel: grid batch x chunks CTAs. CTA (b, chunk) scores candidates [chunk * ppc, +ppc) of
// sequence b (candidate i = page i + 1; pages 0 and n - 1 are always kept) and stores their keys;
// the last of the sequence's CTAs to finish (a counter per sequence, reset by it) then selects the
// k - 2 largest keys (radix select, ties to the lower page) and writes the compacted table row, so
// selection overlaps other sequences' scoring and needs no second launch.
template <typename T>
__global__ void __launch_bounds__(kTopKThreads, 4) pageTopKKernel(const PageTopKParams p, const TopKGeometry g) {
  extern __shared__ float4 smem4[];  // P / N tile, then the staged keys
  float* pn = reinterpret_cast<float*>(smem4);
  __shared__ int hist[256];
  __shared__ int s_warp[kTopKWarps];
  __shared__ int s_digit, s_remaining, s_done, s_last;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int b = blockIdx.x / g.chunks;
  const int chunk = blockIdx.x - b * g.chunks;
  const int n = pagesOf(p, b);
  const int row = p.block_table_rows != nullptr ? p.block_table_rows[b] : b;
  const int32_t* bt = p.block_table + static_cast<int64_t>(row) * p.block_table_stride;
  int32_t* out = p.out_table + static_cast<int64_t>(b) * p.k;
  if (n <= p.k || p.k == 2) {  // nothing to score: every page in order, or the first and the last
    if (chunk != 0) return;
    if (n <= p.k) {
      for (int j = tid; j < p.k; j += kTopKThreads) out[j] = j < n ? bt[j] : -1;
    } else if (tid == 0) {
      out[0] = bt[0];
      out[1] = bt[n - 1];
    }
    return;
  }
  const int nc = n - 2;  // candidates, > m = k - 2 >= 1
  const int ppc = g.per_iter * g.iters;
  const int chunks_b = (nc + ppc - 1) / ppc;
  if (chunk >= chunks_b) return;
  uint32_t* keys = p.keys + static_cast<int64_t>(b) * p.max_pages;

  // ---- scores of candidates [chunk * ppc, +ppc), `lanes` lanes per page ----
  const int R = p.sum_dim, E = g.elems, group = p.heads_q / p.heads_kv;
  const int lanes = g.lanes, sub = lane & (lanes - 1), slot = lane / lanes, pages_per_warp = 32 / lanes;
  const int tile_max = min(E, kPnTile), tiles = (E + kPnTile - 1) / kPnTile;
  const T* q = static_cast<const T*>(p.q) + static_cast<int64_t>(b) * p.q_row_stride;
  // P / N of elements [e0, e0 + len): the group's positive / negative query parts at the channel.
  auto stage = [&](int e0, int len) {
    for (int e = tid; e < len; e += kTopKThreads) {
      const int ee = e0 + e, hk = ee / R;
      const int c = p.channels != nullptr ? p.channels[ee] : ee - hk * R;
      const T* qc = q + static_cast<int64_t>(hk) * group * p.q_head_stride + c;
      float pos = 0.0f, neg = 0.0f;
      for (int gq = 0; gq < group; ++gq) {
        const float x = toFloat(qc[static_cast<int64_t>(gq) * p.q_head_stride]);
        pos += fmaxf(x, 0.0f);
        neg += fminf(x, 0.0f);
      }
      pn[e] = pos;
      pn[tile_max + e] = neg;
    }
  };
  if (tiles == 1) {
    stage(0, E);
    __syncthreads();
  }
  const int i_base = chunk * ppc;
  for (int it = 0; it < g.iters; ++it) {  // uniform over the CTA (syncs inside when tiles > 1)
    const int i = i_base + (it * kTopKWarps + warp) * pages_per_warp + slot;
    const bool valid = i < nc;
    const int64_t phys = valid ? bt[i + 1] : 0;
    const T* smin = static_cast<const T*>(p.sum_min) + phys * p.sum_page_stride;
    const T* smax = static_cast<const T*>(p.sum_max) + phys * p.sum_page_stride;
    float acc = 0.0f;
    for (int t = 0; t < tiles; ++t) {
      const int e0 = t * kPnTile, len = min(kPnTile, E - e0);
      if (tiles > 1) {
        __syncthreads();
        stage(e0, len);
        __syncthreads();
      }
      if (valid) acc += dotTile<T>(smin + e0, smax + e0, pn, tile_max, len / 8, sub, lanes);
    }
    for (int o = lanes / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (valid && sub == 0) keys[i] = scoreKey(acc);
  }

  // ---- the last CTA of the sequence selects ----
  __threadfence();  // this thread's keys are visible device-wide before the count says so
  __syncthreads();
  if (tid == 0) s_last = atomicAdd(p.counters + b, 1u) == static_cast<unsigned>(chunks_b - 1);
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  if (tid == 0) p.counters[b] = 0u;  // zero again for the next launch
  // Keys from L2 (ld.cg: never a stale L1 line), staged in shared memory when they fit.
  uint32_t* skeys = reinterpret_cast<uint32_t*>(smem4);
  const bool staged = nc <= g.smem_keys;
  if (staged) {
    for (int i = tid; i < nc; i += kTopKThreads) skeys[i] = __ldcg(keys + i);
    __syncthreads();
  }
  auto key = [&](int i) -> uint32_t { return staged ? skeys[i] : __ldcg(keys + i); };

  // Radix select of the m-th largest key, 8 bits a pass from the top: afterwards keys whose masked
  // bits exceed `prefix` are in, and the first `remaining` keys (by page) equal to it complete the
  // m. A pass whose digit's bin holds exactly `remaining` keys ends the search (all of them are in).
  const int m = p.k - 2;
  uint32_t prefix = 0, pmask = 0;
  int remaining = m;
  for (int shift = 24; shift >= 0; shift -= 8) {
    hist[tid] = 0;  // kTopKThreads == 256 bins
    __syncthreads();
    for (int base = 0; base < nc; base += kTopKThreads) {
      const int i = base + tid;
      int d = 256;  // no bin
      if (i < nc) {
        const uint32_t kk = key(i);
        if ((kk & pmask) == prefix) d = static_cast<int>((kk >> shift) & 0xffu);
      }
      // Scores cluster in their top bits: aggregate equal bins per warp before the atomic.
      const unsigned peers = __match_any_sync(0xffffffffu, d);
      if (d != 256 && lane == __ffs(peers) - 1) atomicAdd(&hist[d], __popc(peers));
    }
    __syncthreads();
    if (warp == 0) {
      // Lane l holds bins 255 - 8l down to 248 - 8l: the first lane whose running count (from the
      // top bin) reaches `remaining` holds the digit.
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
            s_done = cnt[j] == remaining - cum;
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
    const bool done = s_done != 0;
    __syncthreads();  // s_digit / hist are rewritten by the next pass
    if (done) break;
  }

  // Order-preserving compaction into out[1 .. m]: each thread walks a contiguous run of candidates.
  const int run = (nc + kTopKThreads - 1) / kTopKThreads;
  const int r0 = min(tid * run, nc), r1 = min(r0 + run, nc);
  int eq_local = 0;
  for (int i = r0; i < r1; ++i) eq_local += (key(i) & pmask) == prefix ? 1 : 0;
  int eq_excl, eq_total;
  blockScan(eq_local, eq_excl, eq_total, s_warp);
  int sel_local = 0;
  for (int i = r0, eq_seen = eq_excl; i < r1; ++i) {
    const uint32_t kk = key(i) & pmask;
    if (kk > prefix) {
      ++sel_local;
    } else if (kk == prefix) {
      if (eq_seen < remaining) ++sel_local;
      ++eq_seen;
    }
  }
  int sel_excl, sel_total;
  blockScan(sel_local, sel_excl, sel_total, s_warp);
  for (int i = r0, eq_seen = eq_excl, at = 1 + sel_excl; i < r1; ++i) {
    const uint32_t kk = key(i) & pmask;
    bool sel = kk > prefix;
    if (kk == prefix) sel = eq_seen++ < remaining;
    if (sel) out[at++] = bt[i + 1];
  }
  if (tid == 0) {
    out[0] = bt[0];
    out[p.k - 1] = bt[n - 1];
  }
}

// ---- label channels ----------------------------------------------------------------------------

constexpr int kChannelThreads = 128;

// partial[chunk][h][c] = sum over the chunk's tokens, in order, of |k[t][h][c]| in float64.
template <typename T>
__global__ void __launch_bounds__(kChannelThreads) channelPartialKernel(const PageChannelParams p) {
  const int ch = blockIdx.x, h = blockIdx.y;
  const int t0 = ch * kChannelChunk, t1 = min(p.tokens, t0 + kChannelChunk);
  const T* k = static_cast<const T*>(p.k) + static_cast<int64_t>(h) * p.k_head_stride;
  for (int c = threadIdx.x; c < p.head_dim; c += kChannelThreads) {
    double acc = 0.0;
    for (int t = t0; t < t1; ++t) acc += fabs(static_cast<double>(toFloat(k[static_cast<int64_t>(t) * p.k_row_stride + c])));
    p.partial[(static_cast<int64_t>(ch) * p.heads_kv + h) * p.head_dim + c] = acc;
  }
}

// Per kv head: the chunk sums in chunk order, then the `count` top-ranked channels, ascending.
__global__ void __launch_bounds__(kTopKThreads) channelChooseKernel(const PageChannelParams p, int chunks) {
  extern __shared__ double s_key[];  // [head_dim], then [head_dim] ints
  const int h = blockIdx.x, D = p.head_dim;
  int* s_sel = reinterpret_cast<int*>(s_key + D);
  for (int c = threadIdx.x; c < D; c += kTopKThreads) {
    double acc = 0.0;
    for (int ch = 0; ch < chunks; ++ch) acc += p.partial[(static_cast<int64_t>(ch) * p.heads_kv + h) * D + c];
    s_key[c] = acc != acc ? -1.0 : acc;  // channelKey
  }
  __syncthreads();
  for (int c = threadIdx.x; c < D; c += kTopKThreads) {
    const double kc = s_key[c];
    int rank = 0;
    for (int c2 = 0; c2 < D; ++c2) {
      const double k2 = s_key[c2];
      rank += (k2 > kc || (k2 == kc && c2 < c)) ? 1 : 0;
    }
    s_sel[c] = rank < p.count ? 1 : 0;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < D; c += kTopKThreads) {
    if (!s_sel[c]) continue;
    int at = 0;
    for (int c2 = 0; c2 < c; ++c2) at += s_sel[c2];
    p.out[static_cast<int64_t>(h) * p.count + at] = c;
  }
}

template <typename T>
void launchSummarize(const PageSummaryParams& p, cudaStream_t stream) {
  pageSummarizeKernel<T><<<dim3(p.count, p.heads_kv), kSummaryThreads, 0, stream>>>(p);
}

TopKGeometry topKGeometry(const PageTopKParams& p, int multiprocessors) {
  TopKGeometry g;
  g.elems = p.heads_kv * p.sum_dim;
  const int vecs = g.elems / 8;
  g.lanes = 1;
  while (g.lanes * 2 <= std::min(32, vecs)) g.lanes *= 2;
  g.per_iter = kTopKWarps * (32 / g.lanes);
  const int64_t cand = std::max(p.max_pages - 2, 1);
  // Enough candidates per CTA to amortize staging P / N, still about 4 CTAs per SM overall.
  const int64_t waves = static_cast<int64_t>(g.per_iter) * std::max(multiprocessors, 1) * 4;
  g.iters = static_cast<int>(std::clamp<int64_t>(static_cast<int64_t>(p.batch) * cand / waves, 1, 16));
  const int64_t ppc = static_cast<int64_t>(g.per_iter) * g.iters;
  g.chunks = static_cast<int>((cand + ppc - 1) / ppc);
  g.smem_keys = static_cast<int>(std::min<int64_t>(cand, kSmemKeysMax));
  return g;
}

template <typename T>
void launchTopK(const PageTopKParams& p, int multiprocessors, cudaStream_t stream) {
  const TopKGeometry g = topKGeometry(p, multiprocessors);
  const int64_t blocks = static_cast<int64_t>(g.chunks) * p.batch;
  if (blocks > 0x7fffffff) throwRange("pageTopK: batch * pages exceeds the grid limit");
  const size_t smem = sizeof(float) * static_cast<size_t>(std::max(2 * std::min(g.elems, kPnTile), g.smem_keys));
  auto kernel = pageTopKKernel<T>;
  // The kernel's static shared memory (~1 KB) counts against the 48 KB default too.
  if (smem > 40 * 1024) ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  kernel<<<static_cast<unsigned>(blocks), kTopKThreads, smem, stream>>>(p, g);
}

template <typename T>
void launchChannels(const PageChannelParams& p, cudaStream_t stream) {
  const int chunks = (p.tokens + kChannelChunk - 1) / kChannelChunk;
  channelPartialKernel<T><<<dim3(chunks, p.heads_kv), kChannelThreads, 0, stream>>>(p);
  ATTN_CUDA_CHECK_LAUNCH();
  const size_t smem = static_cast<size_t>(p.head_dim) * (sizeof(double) + sizeof(int));
  channelChooseKernel<<<p.heads_kv, kTopKThreads, smem, stream>>>(p, chunks);
}

}  // namespace

void pageSummarize(const PageSummaryParams& p, cudaStream_t stream) {
  if (p.count <= 0 || p.heads_kv <= 0) return;
  if (p.heads_kv > 65535) throwRange("pageSummarize: at most 65535 kv heads");
  if (!p.k_pages || !p.sum_min || !p.sum_max || !p.block_table || !p.rows || !p.logical || !p.slot_begin || !p.slot_end)
    throwRange("pageSummarize: a required pointer is null");
  if (p.sum_dim < 1 || p.sum_dim > p.head_dim || (!p.channels && p.sum_dim != p.head_dim)) throwRange("pageSummarize: bad summary channels");
  switch (p.dtype) {
    case DType::F32: launchSummarize<float>(p, stream); break;
    case DType::F16: launchSummarize<__half>(p, stream); break;
    case DType::BF16: launchSummarize<__nv_bfloat16>(p, stream); break;
    default: throwRange(std::string("pageSummarize: unsupported dtype ") + dtypeName(p.dtype));
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

void pageTopK(const PageTopKParams& p, int multiprocessors, cudaStream_t stream) {
  if (p.batch <= 0) return;
  if (p.k < 1 || (p.k < 2 && p.max_pages > p.k) || p.max_pages < 1 || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0)
    throwRange("pageTopK: bad k, pages or heads");
  if (!p.q || !p.sum_min || !p.sum_max || !p.block_table || !p.seq_lens || !p.out_table || !p.keys || !p.counters)
    throwRange("pageTopK: a required pointer is null");
  if (p.sum_dim < 1 || p.sum_dim > p.head_dim || (!p.channels && p.sum_dim != p.head_dim) || p.sum_page_stride != static_cast<int64_t>(p.heads_kv) * p.sum_dim)
    throwRange("pageTopK: bad summary channels");
  if ((static_cast<int64_t>(p.heads_kv) * p.sum_dim) % 8 != 0)
    throwRange("pageTopK: kv heads x summary channels must be a multiple of 8 on CUDA (16-byte summary rows)");
  switch (p.dtype) {
    case DType::F16: launchTopK<__half>(p, multiprocessors, stream); break;
    case DType::BF16: launchTopK<__nv_bfloat16>(p, multiprocessors, stream); break;
    default: throwRange(std::string("pageTopK: unsupported dtype ") + dtypeName(p.dtype) + " (f16 or bf16)");
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

void pageChooseChannels(const PageChannelParams& p, cudaStream_t stream) {
  if (p.tokens <= 0 || p.heads_kv <= 0) return;
  if (p.count < 1 || p.count > p.head_dim || p.head_dim > 4096) throwRange("pageChooseChannels: bad channel count");
  if (p.heads_kv > 65535) throwRange("pageChooseChannels: at most 65535 kv heads");
  if (!p.k || !p.out || !p.partial) throwRange("pageChooseChannels: a required pointer is null");
  switch (p.dtype) {
    case DType::F32: launchChannels<float>(p, stream); break;
    case DType::F16: launchChannels<__half>(p, stream); break;
    case DType::BF16: launchChannels<__nv_bfloat16>(p, stream); break;
    default: throwRange(std::string("pageChooseChannels: unsupported dtype ") + dtypeName(p.dtype));
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda
