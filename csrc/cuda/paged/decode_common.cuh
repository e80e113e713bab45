// What the 16-bit (decode_kernel.cuh) and the quantized-cache (decode_quant_kernel.cuh) paged
// decode kernels share: the CTA's place in the grid and its key range, the per-row masks, the score
// transform, the online softmax (its start, its step, and P as the A fragment of P V) and the
// epilogue (the warps' merge, the split partial or the output, and the fused split combine). Both
// kernels: 4 warps, 16 (query row, head) pairs per CTA, 64-key tiles with 16 keys per warp,
// mma.sync m16n8k16 fragments (lane: g = lane / 4 owns rows g and g + 8, t4 = lane % 4 columns
// 2 t4 and 2 t4 + 1 of every n8 tile). The keys-on-M tile math (decode_keys_on_m.cuh) shares all
// but the score layout (its score transform repeats decodeScores' per element), the softmax and
// the first half of the epilogue.
#pragma once
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "../common/ptx.cuh"
#include "paged_internal.h"
#include "split_combine.cuh"

namespace attn::cuda::paged {

// Byte offset of 16-byte chunk `chunk` of row `row` in a [rows][D] tile, XOR-swizzled so that
// ldmatrix (8 rows, one chunk column) and the row-contiguous cp.async writes are conflict-free.
template <int D>
__device__ __forceinline__ uint32_t swz(int row, int chunk) {
  return static_cast<uint32_t>((row * (D / 8) + (chunk ^ (row & 7))) * 16);
}

// One CTA = (sequence b, kv head, block of 16 (query row, head) pairs, split). Its rows are the
// flattened pairs m = qi * group + g; its key range is the union of its rows' visible ranges, cut
// into num_splits tile-aligned chunks.
struct DecodeCta {
  int mb, kvh, b, split;
  int q0, nq, len_k;
  int m0, mrows;    // first pair, pairs (<= 16)
  int offset;       // query row qi sits at position offset + qi
  int kbeg, kend;   // this split's keys
  int ntiles;
  int max_lo, tile_hi;  // tiles within [max_lo, tile_hi) need no mask for any row
  bool any_empty;       // some row sees no key at all

  // Visible keys of local row m: [lo, hi) within [0, len_k).
  __device__ __forceinline__ void rowRange(const DecodeArgs& a, int m, int& lo, int& hi) const {
    queryRange(a, (m0 + m) / a.group, lo, hi);
  }
  // Visible keys of the sequence's query row qi (every head of the row sees the same keys).
  __device__ __forceinline__ void queryRange(const DecodeArgs& a, int qi, int& lo, int& hi) const {
    const long long pos = static_cast<long long>(offset) + qi;
    long long l = 0, h = len_k;
    if (a.window_left >= 0) l = max(l, pos - a.window_left);
    if (a.window_right >= 0) h = min(h, pos + a.window_right + 1);
    lo = static_cast<int>(min(l, static_cast<long long>(len_k)));
    hi = static_cast<int>(max(h, 0LL));
  }
  // Global (row, head) pair of local row r: its query row and head.
  __device__ __forceinline__ int64_t pairOf(const DecodeArgs& a, int r, int& row, int& h) const {
    return splitRowPair(a, m0, kvh, q0, r, h, row);
  }
};

// Block-table row of sequence b.
__device__ __forceinline__ int decodeTableRow(const DecodeArgs& a, int b) {
  if (a.block_table_rows != nullptr) return __ldg(a.block_table_rows + b);
  return a.seq_lens ? b : a.inline_rows[b];
}

// The CTA of blockIdx; false when it has no rows (a uniform early exit).
__device__ __forceinline__ bool decodeCtaOf(const DecodeArgs& a, DecodeCta& c) {
  constexpr int kN = kDecodeTileKeys;
  int bid = blockIdx.x;
  c.mb = bid % a.mblocks;
  bid /= a.mblocks;
  c.kvh = bid % a.heads_kv;
  c.b = bid / a.heads_kv;
  c.split = blockIdx.y;
  c.q0 = a.cu_q ? a.cu_q[c.b] : c.b;
  c.nq = a.cu_q ? a.cu_q[c.b + 1] - c.q0 : 1;
  c.len_k = max(a.seq_lens ? a.seq_lens[c.b] : a.inline_lens[c.b], 0);
  const int rows_total = c.nq * a.group;
  c.m0 = c.mb * kDecodeRows;
  if (c.m0 >= rows_total) return false;
  c.mrows = min(kDecodeRows, rows_total - c.m0);
  c.offset = c.len_k - c.nq;

  int lo_all = INT_MAX, hi_all = 0, min_hi = INT_MAX;
  c.max_lo = 0;
  c.any_empty = false;
  // The rows' query rows (one for decode): the heads of a query row share its key range.
  const int qi_end = (c.m0 + c.mrows - 1) / a.group + 1;
  for (int qi = c.m0 / a.group; qi < qi_end; ++qi) {
    int lo, hi;
    c.queryRange(a, qi, lo, hi);
    if (hi <= lo) {
      c.any_empty = true;
      continue;
    }
    lo_all = min(lo_all, lo);
    hi_all = max(hi_all, hi);
    c.max_lo = max(c.max_lo, lo);
    min_hi = min(min_hi, hi);
  }
  if (lo_all >= hi_all) lo_all = hi_all = 0;
  const int lo_al = lo_all & ~(kN - 1);
  const int span = hi_all - lo_al;
  const int chunk = ((span + a.num_splits - 1) / a.num_splits + kN - 1) & ~(kN - 1);
  c.kbeg = lo_al + c.split * chunk;
  c.kend = min(hi_all, c.kbeg + chunk);
  c.ntiles = c.kend > c.kbeg ? (c.kend - c.kbeg + kN - 1) / kN : 0;
  c.tile_hi = min(min_hi, c.kend);
  return true;
}

// The lane's rows g and g + 8: visible keys (hi cut at the split's end), position, ALiBi slope.
struct DecodeRows {
  int lo[2], hi[2], pos[2];
  float slope[2];  // log2 units
};

// The same for any two local rows (pairs) m_0 and m_1.
__device__ __forceinline__ DecodeRows decodeRowsAt(const DecodeArgs& a, const DecodeCta& c, int m_0, int m_1) {
  constexpr float kLog2e = 1.4426950408889634f;
  DecodeRows r;
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int m = rr == 0 ? m_0 : m_1;
    r.lo[rr] = r.hi[rr] = r.pos[rr] = 0;
    r.slope[rr] = 0.0f;
    if (m < c.mrows) {
      c.rowRange(a, m, r.lo[rr], r.hi[rr]);
      const int qi = (c.m0 + m) / a.group;
      r.pos[rr] = c.offset + qi;
      if (a.alibi) r.slope[rr] = a.alibi[c.kvh * a.group + (c.m0 + m - qi * a.group)] * kLog2e;
    }
    r.hi[rr] = min(r.hi[rr], c.kend);
  }
  return r;
}

__device__ __forceinline__ DecodeRows decodeRowsOf(const DecodeArgs& a, const DecodeCta& c, int g) {
  return decodeRowsAt(a, c, g, g + 8);
}

// Raw scores of this warp's 16 keys of the tile at ts (key of s[nt][e]: ts + key0 + nt * 8 + 2 t4 +
// e % 2) -> log2 units with softcap / ALiBi, masked keys -inf.
__device__ __forceinline__ void decodeScores(const DecodeArgs& a, const DecodeCta& c, const DecodeRows& r, float (&s)[2][4],
                                             int ts, int key0, int t4) {
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  const bool transform = a.has_softcap || a.alibi != nullptr;
  const bool need_mask = c.any_empty || ts < c.max_lo || ts + kDecodeTileKeys > c.tile_hi;
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int rr = e >> 1;
      const int j = ts + key0 + nt * 8 + 2 * t4 + (e & 1);
      float x;
      if (!transform) {
        x = s[nt][e] * a.scale_log2;
      } else {
        x = a.has_softcap ? a.softcap_log2 * tanhf(s[nt][e] * a.softcap_scale) : s[nt][e] * a.scale_log2;
        x -= r.slope[rr] * fabsf(static_cast<float>(r.pos[rr] - j));
      }
      if (need_mask && (j < r.lo[rr] || j >= r.hi[rr])) x = kNegInf;
      s[nt][e] = x;
    }
  }
}

// Before the first tile: no key seen (running max -inf, sum 0), the output accumulators zero.
template <int kNP>
__device__ __forceinline__ void initRows(float (&o_acc)[kNP][4], float (&m_run)[2], float (&l_run)[2]) {
#pragma unroll
  for (int i = 0; i < kNP; ++i) o_acc[i][0] = o_acc[i][1] = o_acc[i][2] = o_acc[i][3] = 0.0f;
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  m_run[0] = m_run[1] = kNegInf;
  l_run[0] = l_run[1] = 0.0f;
}

// Online softmax for rows g and g + 8 (the quad of 4 lanes shares a row): s becomes P, the running
// max / sum advance and the output accumulator is rescaled.
template <int kNP>
__device__ __forceinline__ void decodeSoftmax(float (&s)[2][4], float (&m_run)[2], float (&l_run)[2], float (&o_acc)[kNP][4]) {
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float mx = fmaxf(fmaxf(s[0][2 * rr], s[0][2 * rr + 1]), fmaxf(s[1][2 * rr], s[1][2 * rr + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m_run[rr], mx);
    const float m_use = m_new == kNegInf ? 0.0f : m_new;  // every key so far masked: keep exp2 finite
    const float alpha = exp2f(m_run[rr] - m_use);         // m_run == -inf -> 0
    m_run[rr] = m_new;
    float sum = 0.0f;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float p = exp2f(s[nt][2 * rr + e] - m_use);  // -inf -> 0
        s[nt][2 * rr + e] = p;
        sum += p;
      }
    }
    l_run[rr] = l_run[rr] * alpha + sum;
#pragma unroll
    for (int i = 0; i < kNP; ++i) {
      o_acc[i][2 * rr] *= alpha;
      o_acc[i][2 * rr + 1] *= alpha;
    }
  }
}

// P (s after decodeSoftmax) as the A fragment of O += P V: the accumulators of the warp's two n8
// tiles of keys are exactly the m16n8k16 A layout of a 16x16 P tile.
template <typename T>
__device__ __forceinline__ void pFragment(uint32_t (&pa)[4], const float (&s)[2][4]) {
  pa[0] = ElemTraits<T>::pack(s[0][0], s[0][1]);
  pa[1] = ElemTraits<T>::pack(s[0][2], s[0][3]);
  pa[2] = ElemTraits<T>::pack(s[1][0], s[1][1]);
  pa[3] = ElemTraits<T>::pack(s[1][2], s[1][3]);
}

// Floats per row of the epilogue's [warps][16][stride] merge buffer (16-byte rows, no bank pattern).
template <int D>
constexpr int kDecodeOStride = D + 4;

// The epilogue's per-row state of every warp, and the split's lse per row for the cluster combine.
struct DecodeMergeSmem {
  float m[kDecodeWarps][kDecodeRows];
  float l[kDecodeWarps][kDecodeRows];
  float lse[kDecodeRows];
};

// The epilogue's part after the warps' scaled outputs are in s_o ([warp][row][kDecodeOStride]) and
// the lse is stored: sums the warps per (row, 8 channels) and writes the output, the split's
// partial, or (cluster) merges the splits through distributed shared memory.
template <typename T, int D, int kCombineBatch>
__device__ __forceinline__ void decodeEpilogueOut(const DecodeArgs& a, const DecodeCta& c, float* s_o, float* s_lse) {
  constexpr int kOStride = kDecodeOStride<D>;
  const int tid = threadIdx.x;
  const bool split_out = a.num_splits > 1;
  __syncthreads();

  for (int u = tid; u < kDecodeRows * (D / 8); u += kDecodeThreads) {
    const int r = u / (D / 8), cc = u % (D / 8);
    if (r >= c.mrows) break;  // u grows with r
    float v[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = 0.0f;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) {
      const float4* src = reinterpret_cast<const float4*>(s_o + (w * kDecodeRows + r) * kOStride + cc * 8);
      const float4 x0 = src[0], x1 = src[1];
      v[0] += x0.x; v[1] += x0.y; v[2] += x0.z; v[3] += x0.w;
      v[4] += x1.x; v[5] += x1.y; v[6] += x1.z; v[7] += x1.w;
    }
    if (a.cluster) {  // this split's partial, in place of warp 0's rows (only this thread reads them)
      float4* dst = reinterpret_cast<float4*>(s_o + r * kOStride + cc * 8);
      dst[0] = make_float4(v[0], v[1], v[2], v[3]);
      dst[1] = make_float4(v[4], v[5], v[6], v[7]);
      continue;
    }
    int row, h;
    c.pairOf(a, r, row, h);
    if (split_out) {
      float* dst = a.ws_o + ((static_cast<int64_t>(c.split) * a.total_q + row) * a.heads_q + h) * D + cc * 8;
      reinterpret_cast<float4*>(dst)[0] = make_float4(v[0], v[1], v[2], v[3]);
      reinterpret_cast<float4*>(dst)[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
      T* dst = static_cast<T*>(a.o) + static_cast<int64_t>(row) * a.o_row_stride + static_cast<int64_t>(h) * a.o_head_stride + cc * 8;
      store8<T>(dst, v);
    }
  }
  if (a.cluster) {
    clusterCombineRows<T, D>(a, c.m0, c.mrows, c.kvh, c.q0, s_o, kOStride, s_lse);
  } else if (split_out && a.counters != nullptr && lastSplitArrived(a)) {
    combineSplitRows<T, D, kCombineBatch>(a, c.m0, c.mrows, c.kvh, c.q0);
  }
}

// Row `row` over the warps' states in ms: its max M (log2 units) and sum L, and the factor that
// turns a warp's accumulator (kept at that warp's max m_warp) into its share of the output.
__device__ __forceinline__ float mergeWarpRow(const DecodeMergeSmem& ms, int row, float m_warp, float& M, float& L) {
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  M = kNegInf;
#pragma unroll
  for (int w = 0; w < kDecodeWarps; ++w) M = fmaxf(M, ms.m[w][row]);
  const float Mu = M == kNegInf ? 0.0f : M;
  L = 0.0f;
#pragma unroll
  for (int w = 0; w < kDecodeWarps; ++w) L += ms.l[w][row] * exp2f(ms.m[w][row] - Mu);
  return L > 0.0f ? exp2f(m_warp - Mu) / L : 0.0f;
}

// A row's merged lse (natural log) where it goes: the cluster's shared slot, the split workspace or
// the output's lse. Row `row` < mrows of the CTA; M, L: its max (log2 units) and sum over warps.
__device__ __forceinline__ void storeDecodeLse(const DecodeArgs& a, const DecodeCta& c, int row, float M, float L, float* s_lse) {
  constexpr float kLn2 = 0.6931471805599453f;
  const float lse = L > 0.0f ? M * kLn2 + logf(L) : __int_as_float(static_cast<int>(0xff800000u));
  int qrow, h;
  const int64_t idx = c.pairOf(a, row, qrow, h);
  if (a.cluster) {
    s_lse[row] = lse;
  } else if (a.num_splits > 1) {
    a.ws_lse[static_cast<int64_t>(c.split) * a.total_q * a.heads_q + idx] = lse;
  } else if (a.lse) {
    a.lse[idx] = lse;
  }
}

// Epilogue: merges the 4 warps' (m, l, O) per row through shared memory s_o ([4][16][kDecodeOStride]
// floats, free by now), writes the lse and the output (or, with splits, the partial to the
// workspace, and the last split of the CTA row merges them all). channelOf(np, n): the output
// channel of column n of n8 tile np of o_acc; v_chan (or null) multiplies each channel.
template <typename T, int D, int kCombineBatch, typename ChannelOf>
__device__ __forceinline__ void decodeEpilogue(const DecodeArgs& a, const DecodeCta& c, float (&o_acc)[D / 8][4],
                                               const float (&m_run)[2], float (&l_run)[2], float* s_o, ChannelOf channelOf,
                                               const float* v_chan) {
  __shared__ DecodeMergeSmem ms;
  constexpr int kOStride = kDecodeOStride<D>;
  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;

  cpAsyncWait<0>();
  __syncthreads();  // every warp is done with the pipeline buffers
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    l_run[rr] += __shfl_xor_sync(0xffffffffu, l_run[rr], 1);
    l_run[rr] += __shfl_xor_sync(0xffffffffu, l_run[rr], 2);
  }
  if (t4 == 0) {
    ms.m[warp][g] = m_run[0];
    ms.m[warp][g + 8] = m_run[1];
    ms.l[warp][g] = l_run[0];
    ms.l[warp][g + 8] = l_run[1];
  }
  __syncthreads();

#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int row = g + rr * 8;
    float M, L;
    const float fac = mergeWarpRow(ms, row, m_run[rr], M, L);
    float* dst = s_o + (warp * kDecodeRows + row) * kOStride;
#pragma unroll
    for (int np = 0; np < D / 8; ++np) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int ch = channelOf(np, 2 * t4 + e);
        dst[ch] = o_acc[np][2 * rr + e] * fac * (v_chan ? __ldg(v_chan + ch) : 1.0f);
      }
    }
    if (warp == 0 && t4 == 0 && row < c.mrows) storeDecodeLse(a, c, row, M, L, ms.lse);
  }
  decodeEpilogueOut<T, D, kCombineBatch>(a, c, s_o, ms.lse);
}

}  // namespace attn::cuda::paged
