// Preprocessing of the quantized forward (rules: csrc/common/quant.h). Two launches, both memory
// bound: each thread issues all its loads (16-byte K/V chunks, a warp's Q rows) before using any.
//   stats:    per (key block, kv head): the block's per-channel K sum and |V| max (with the
//             outlier channels, kOutl: also its K^2 sum and |K| max). The last CTA of a (sequence,
//             kv head) to finish (QuantArgs::counters) adds the blocks' partials into the K mean
//             (and variance, and picks the outlier channels) and turns the |V| max into V scale
//             and inverse.
//   quantize: per (key block, kv head): smoothed K -> int8 (e4m3 in mode fp8) with the block
//             scale; V -> fp8 / f16 with the channel scales, written transposed (V^T [D][keys],
//             keys permuted for fp8). After those CTAs, Q: a warp per kQRows (token, head) rows,
//             int8 (e4m3) with the token scale, and scale * q . mean_k.
// Sums run in the order the CPU emulation uses, and every division is correctly rounded
// (__fdiv_rn: --use_fast_math would otherwise approximate it), so the quantized values match it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "../check.h"
#include "../common/elem_convert.cuh"
#include "quant_internal.h"
#include "prep_layout.cuh"
#include "rotate_row.cuh"

namespace attn::cuda::quant {
namespace {

// Two packed elements (the first in the low half) as floats.
template <typename T>
__device__ __forceinline__ void unpack2(uint32_t w, float& lo, float& hi) {
  lo = bitsToFloat<T>(static_cast<uint16_t>(w & 0xffffu));
  hi = bitsToFloat<T>(static_cast<uint16_t>(w >> 16));
}

// 8 consecutive elements (one 16-byte chunk) as floats.
template <typename T>
__device__ __forceinline__ void unpack8(const uint4& u, float (&x)[8]) {
  unpack2<T>(u.x, x[0], x[1]);
  unpack2<T>(u.y, x[2], x[3]);
  unpack2<T>(u.z, x[4], x[5]);
  unpack2<T>(u.w, x[6], x[7]);
}

// The 16-byte chunk at element i (16-byte aligned).
__device__ __forceinline__ uint4 load16(const void* base, int64_t i) {
  return __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(base) + i));
}

// 8 consecutive floats at p (32-byte aligned), written by an earlier launch.
__device__ __forceinline__ void load8f(const float* p, float (&x)[8]) {
  const float4 lo = __ldg(reinterpret_cast<const float4*>(p)), hi = __ldg(reinterpret_cast<const float4*>(p + 4));
  x[0] = lo.x, x[1] = lo.y, x[2] = lo.z, x[3] = lo.w, x[4] = hi.x, x[5] = hi.y, x[6] = hi.z, x[7] = hi.w;
}

// The largest b < batch with start[b] <= x (empty sequences share their start with the next).
__device__ __forceinline__ int seqOf(const int32_t* start, int batch, int x) {
  int lo = 0, hi = batch - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (__ldg(start + mid) <= x) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// Element offset of key row j of sequence b, kv head hk.
__device__ __forceinline__ int64_t keyOffset(const QuantArgs& a, int64_t batch_stride, int64_t row_stride,
                                             int64_t head_stride, int b, int j, int hk) {
  const int64_t base = a.varlen ? static_cast<int64_t>(__ldg(a.k_start + b)) * row_stride : b * batch_stride;
  return base + static_cast<int64_t>(j) * row_stride + static_cast<int64_t>(hk) * head_stride;
}

// The key block a CTA works on: sequence b, its keys [j0, j0 + n) (the rest of the block is padding).
struct KeyBlock {
  int b, j0, n;
};

__device__ __forceinline__ KeyBlock keyBlock(const QuantArgs& a, int blk) {
  const int key0 = blk * kBlockN;
  const int b = seqOf(a.kp_start, a.batch, key0);  // a key block belongs to a sequence with keys
  const int j0 = key0 - __ldg(a.kp_start + b);
  const int len = __ldg(a.k_start + b + 1) - __ldg(a.k_start + b);
  return {b, j0, min(kBlockN, len - j0)};
}

// A key block of K or V as 16-byte chunks, kChunks per key row: thread tid takes chunk column
// tid % kChunks of rows tid / kChunks + i * kRowStep, i < kUnits. So all of a thread's chunks
// lie in one column (8 channels).
template <int D>
struct BlockChunks {
  static constexpr int kChunks = D / 8;
  static constexpr int kRowStep = kThreads / kChunks;
  static constexpr int kUnits = kBlockN / kRowStep;
  static_assert(kThreads % kChunks == 0 && kChunks <= 32, "a column's lanes share a warp");
};

// This thread's K and V chunks of the key block (zeros for padding keys), every load in flight.
// kVByKeys: V as VChunks (the quantize launch), else as BlockChunks, like K.
template <int D, bool kVByKeys>
__device__ __forceinline__ void loadKvChunks(const QuantArgs& a, const KeyBlock& kb, int hk,
                                             uint4 (&kr)[BlockChunks<D>::kUnits], uint4 (&vr)[BlockChunks<D>::kUnits]) {
  using C = BlockChunks<D>;
  using V = VChunks<D, kWarps>;
  static_assert(V::kUnits == C::kUnits, "as many V chunks a thread as K chunks");
  const int cc = threadIdx.x % C::kChunks, jj0 = threadIdx.x / C::kChunks;
  const int vc = kVByKeys ? V::column() : cc;
#pragma unroll
  for (int i = 0; i < C::kUnits; ++i) {
    const int jj = jj0 + i * C::kRowStep, vj = kVByKeys ? V::key(i) : jj;
    kr[i] = vr[i] = make_uint4(0u, 0u, 0u, 0u);
    if (jj < kb.n)
      kr[i] = load16(a.k, keyOffset(a, a.k_batch_stride, a.k_row_stride, a.k_head_stride, kb.b, kb.j0 + jj, hk) + cc * 8);
    if (vj < kb.n)
      vr[i] = load16(a.v, keyOffset(a, a.v_batch_stride, a.v_row_stride, a.v_head_stride, kb.b, kb.j0 + vj, hk) + vc * 8);
  }
}

// Channel c of (sequence b, kv head hk)'s statistics from its K sum and |V| max over len keys.
__device__ __forceinline__ void writeSeqStats(const QuantArgs& a, int b, int hk, int c, int len, float ksum,
                                              float vmax) {
  const int64_t o = (static_cast<int64_t>(b) * a.heads_kv + hk) * a.head_dim + c;
  a.k_mean[o] = len > 0 ? __fdiv_rn(ksum, static_cast<float>(len)) : 0.0f;
  a.v_scale[o] = __fdiv_rn(vmax, kQuantVTarget);
  a.v_inv[o] = vmax > 0.0f ? __fdiv_rn(kQuantVTarget, vmax) : 0.0f;
}

// The outlier channels of (sequence b, kv head hk) from its K variances (csrc/common/quant.h:
// rank < kQuantOutliers), ascending, and the f16 scale of their K from the |k - mean| bounds.
// Called by the whole CTA.
template <int D>
__device__ void writeOutliers(const QuantArgs& a, int b, int hk, const float* s_var, const float* s_bound) {
  static_assert(D >= 4 * kQuantOutliers, "quantOutlierCount(D) == kQuantOutliers");
  __shared__ int s_sel[D];
  for (int c = threadIdx.x; c < D; c += kThreads) s_sel[c] = outlierRank(s_var, D, c) < kQuantOutliers ? 1 : 0;
  __syncthreads();
  const int64_t seq = static_cast<int64_t>(b) * a.heads_kv + hk;
  for (int c = threadIdx.x; c < D; c += kThreads) {
    if (!s_sel[c]) continue;
    int pos = 0;
    for (int d = 0; d < c; ++d) pos += s_sel[d];
    a.outl[seq * kQuantOutliers + pos] = c;
  }
  if (threadIdx.x == 0) {
    float bound = 0.0f;
    for (int c = 0; c < D; ++c)
      if (s_sel[c]) bound = fmaxf(bound, s_bound[c]);
    a.ko_scale[seq] = __fdiv_rn(1.0f, outlierPow2(bound));
  }
}

// (Sequence b, kv head hk)'s statistics from its blocks' partials, once all are written: the K
// sums added in block order (the CPU emulation's order), one thread per channel. Read from L2
// (__ldcg: other SMs wrote them during this launch), kBatch blocks in flight per thread (one
// round at 2k keys, where this tail is a visible part of the launch).
template <int D, bool kOutl>
__device__ void finishSequence(const QuantArgs& a, int b, int hk) {
  constexpr int kBatch = kOutl ? 16 : 32;
  __shared__ float s_var[D], s_bound[D];
  const int blocks = a.total_kp / kBlockN;
  const int blk0 = __ldg(a.kp_start + b) / kBlockN;
  const int nb = __ldg(a.kp_start + b + 1) / kBlockN - blk0;
  const int len = __ldg(a.k_start + b + 1) - __ldg(a.k_start + b);
  const int64_t part0 = (static_cast<int64_t>(hk) * blocks + blk0) * D;
  for (int c = threadIdx.x; c < D; c += kThreads) {
    float sum = 0.0f, sq = 0.0f, kabs = 0.0f, vmax = 0.0f;
    for (int i0 = 0; i0 < nb; i0 += kBatch) {
      float ks[kBatch], qs[kBatch], as[kBatch], vs[kBatch];
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        const int64_t idx = part0 + static_cast<int64_t>(i0 + i) * D + c;
        ks[i] = i0 + i < nb ? __ldcg(a.k_part + idx) : 0.0f;
        if constexpr (kOutl) {
          qs[i] = i0 + i < nb ? __ldcg(a.k_sq_part + idx) : 0.0f;
          as[i] = i0 + i < nb ? __ldcg(a.k_abs_part + idx) : 0.0f;
        }
        vs[i] = i0 + i < nb ? __ldcg(a.v_part + idx) : 0.0f;
      }
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        if (i0 + i < nb) {
          sum = __fadd_rn(sum, ks[i]);
          if constexpr (kOutl) sq = __fadd_rn(sq, qs[i]);
        }
        if constexpr (kOutl) kabs = fmaxf(kabs, as[i]);
        vmax = fmaxf(vmax, vs[i]);
      }
    }
    writeSeqStats(a, b, hk, c, len, sum, vmax);
    if constexpr (kOutl) {
      const float mean = len > 0 ? __fdiv_rn(sum, static_cast<float>(len)) : 0.0f;
      s_var[c] = len > 0 ? __fmaf_rn(-mean, mean, __fdiv_rn(sq, static_cast<float>(len))) : 0.0f;
      s_bound[c] = __fadd_rn(kabs, fabsf(mean));
    }
  }
  if constexpr (kOutl) {
    __syncthreads();
    writeOutliers<D>(a, b, hk, s_var, s_bound);
  }
}

// Grid (blocks + keyless batch, heads_kv). Per key block: K staged in shared memory so that one
// thread per channel sums the block's keys in key order (the CPU emulation's order); |V| max in
// registers, then across threads (max is exact in any order). CTAs x >= blocks (launched only when
// some sequence has no keys, and so no block) write zero statistics for sequence x - blocks.
template <typename T, int D, bool kOutl>
__global__ void __launch_bounds__(kThreads) statsKernel(const QuantArgs a) {
  using C = BlockChunks<D>;
  __shared__ __align__(16) uint16_t s_k[kBlockN * D];
  __shared__ float s_vmax[kWarps][D];
  __shared__ int s_last;

  const int blocks = a.total_kp / kBlockN;
  const int hk = blockIdx.y, tid = threadIdx.x;
  if (static_cast<int>(blockIdx.x) >= blocks) {
    const int b = blockIdx.x - blocks;
    if (__ldg(a.k_start + b + 1) == __ldg(a.k_start + b)) {  // uniform over the CTA
      __shared__ float s_zero[D];
      for (int c = tid; c < D; c += kThreads) {
        writeSeqStats(a, b, hk, c, 0, 0.0f, 0.0f);
        if constexpr (kOutl) s_zero[c] = 0.0f;
      }
      if constexpr (kOutl) {
        __syncthreads();
        writeOutliers<D>(a, b, hk, s_zero, s_zero);
      }
    }
    return;
  }
  const int blk = blockIdx.x;
  const KeyBlock kb = keyBlock(a, blk);
  const int cc = tid % C::kChunks, jj0 = tid / C::kChunks;
  uint4 kr[C::kUnits], vr[C::kUnits];
  loadKvChunks<D, false>(a, kb, hk, kr, vr);
  float vmax[8] = {};
#pragma unroll
  for (int i = 0; i < C::kUnits; ++i) {
    *reinterpret_cast<uint4*>(s_k + (jj0 + i * C::kRowStep) * D + cc * 8) = kr[i];
    float y[8];
    unpack8<T>(vr[i], y);
#pragma unroll
    for (int e = 0; e < 8; ++e) vmax[e] = fmaxf(vmax[e], fabsf(y[e]));
  }
  // The warp's other lanes of column cc hold other keys; then the warps, through shared memory.
#pragma unroll
  for (int e = 0; e < 8; ++e)
#pragma unroll
    for (int o = 16; o >= C::kChunks; o >>= 1) vmax[e] = fmaxf(vmax[e], __shfl_xor_sync(0xffffffffu, vmax[e], o));
  if ((tid & 31) < C::kChunks) {
#pragma unroll
    for (int e = 0; e < 8; ++e) s_vmax[tid >> 5][cc * 8 + e] = vmax[e];
  }
  __syncthreads();
  const int64_t part = (static_cast<int64_t>(hk) * blocks + blk) * D;
  for (int c = tid; c < D; c += kThreads) {
    float sum = 0.0f, sq = 0.0f, kabs = 0.0f;
#pragma unroll 8
    for (int jj = 0; jj < kb.n; ++jj) {
      const float x = bitsToFloat<T>(s_k[jj * D + c]);
      sum = __fadd_rn(sum, x);
      if constexpr (kOutl) {
        sq = __fmaf_rn(x, x, sq);
        kabs = fmaxf(kabs, fabsf(x));
      }
    }
    float vm = s_vmax[0][c];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) vm = fmaxf(vm, s_vmax[w][c]);
    a.k_part[part + c] = sum;
    a.v_part[part + c] = vm;
    if constexpr (kOutl) {
      a.k_sq_part[part + c] = sq;
      a.k_abs_part[part + c] = kabs;
    }
  }

  // The last CTA of the sequence to arrive finishes it, and zeroes the counter for the next launch.
  __threadfence();  // this thread's partials before the arrival below
  __syncthreads();
  if (tid == 0) {
    unsigned* counter = a.counters + static_cast<int64_t>(kb.b) * a.heads_kv + hk;
    const unsigned nb = (__ldg(a.kp_start + kb.b + 1) - __ldg(a.kp_start + kb.b)) / kBlockN;
    const bool last = atomicAdd(counter, 1u) == nb - 1u;
    if (last) *counter = 0u;
    s_last = last ? 1 : 0;
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();  // the other CTAs' partials before the reads
  finishSequence<D, kOutl>(a, kb.b, hk);
}

// For each of the N channels c0 .. c0 + N - 1: its place in the (sequence, kv head)'s outlier
// list, or -1.
template <int N>
__device__ __forceinline__ void outlierSlots(const int32_t* outl, int c0, int (&slot)[N]) {
  int list[kQuantOutliers];
#pragma unroll
  for (int i = 0; i < kQuantOutliers; ++i) list[i] = __ldg(outl + i);
#pragma unroll
  for (int e = 0; e < N; ++e) {
    slot[e] = -1;
#pragma unroll
    for (int i = 0; i < kQuantOutliers; ++i) slot[e] = list[i] == c0 + e ? i : slot[e];
  }
}

// f16 bits of x (round to nearest even).
__device__ __forceinline__ uint16_t f16Bits(float x) { return __half_as_ushort(__float2half_rn(x)); }

// One 8-bit code of x * inv: int8 (round to nearest even, clamped to +-127) or e4m3 (saturating).
template <bool kFp8>
__device__ __forceinline__ uint32_t quantCode(float x, float inv) {
  const float y = __fmul_rn(x, inv);
  if constexpr (kFp8) {
    return static_cast<uint32_t>(__nv_cvt_float_to_fp8(y, __NV_SATFINITE, __NV_E4M3));
  } else {
    return static_cast<uint32_t>(max(-127, min(127, __float2int_rn(y)))) & 0xffu;
  }
}

// One (key block, kv head) of K and V. kFp8: V (and P) in e4m3, else f16; kKFp8: K in e4m3
// (mode fp8), else int8; kOutl: the outlier channels go to Ko (f16), 0 in K8. Padding keys are
// written as zeros.
template <typename T, int D, bool kFp8, bool kKFp8, bool kOutl>
__device__ void quantKvBlock(const QuantArgs& a, int blk, int hk) {
  using C = BlockChunks<D>;
  constexpr int kVBytes = kFp8 ? 1 : 2;
  constexpr bool kRot = quantRotates(kOutl, D);
  __shared__ float s_red[kWarps];
  __shared__ __align__(16) unsigned char s_vt[D * kBlockN * kVBytes];

  const int tid = threadIdx.x;
  const int blocks = a.total_kp / kBlockN;
  const int key0 = blk * kBlockN;
  const KeyBlock kb = keyBlock(a, blk);
  const int cc = tid % C::kChunks, jj0 = tid / C::kChunks;
  uint4 kr[C::kUnits], vr[C::kUnits];
  loadKvChunks<D, true>(a, kb, hk, kr, vr);
  const int vc = VChunks<D, kWarps>::column();
  float mean[8], vinv[8];  // of this thread's K and V columns
  const int64_t seq = static_cast<int64_t>(kb.b) * a.heads_kv + hk;
  load8f(a.k_mean + seq * D + cc * 8, mean);
  load8f(a.v_inv + seq * D + vc * 8, vinv);
  int slot[8];  // outlier channels of this column: their place in Ko rows, else -1
  float ko_pow2 = 1.0f;
  if constexpr (kOutl) {
    outlierSlots(a.outl + seq * kQuantOutliers, cc * 8, slot);
    ko_pow2 = __fdiv_rn(1.0f, __ldg(a.ko_scale + seq));
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) slot[e] = -1;
  }

  // K: smooth (and rotate), block absmax, int8 (padding keys: 0, not -mean). Unrotated, smoothed
  // twice rather than kept: registers hold the raw chunks of K and V in flight.
  auto smoothedK = [&](int i, float (&x)[8]) {
    const bool key = jj0 + i * C::kRowStep < kb.n;
    unpack8<T>(kr[i], x);
#pragma unroll
    for (int e = 0; e < 8; ++e) x[e] = key ? __fsub_rn(x[e], mean[e]) : 0.0f;
    if constexpr (kRot) rotateRowLanes<8, D>(x, cc);
  };
  // Rotated, the values are kept instead: 32 shuffles a unit at d128 are not worth repeating.
  float kept[kRot ? C::kUnits : 1][8];
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < C::kUnits; ++i) {
    float x[8];
    smoothedK(i, x);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      if (slot[e] < 0) amax = fmaxf(amax, fabsf(x[e]));
      if constexpr (kRot) kept[i][e] = x[e];
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  if ((tid & 31) == 0) s_red[tid >> 5] = amax;
  __syncthreads();
  amax = s_red[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) amax = fmaxf(amax, s_red[w]);
  constexpr float kKTarget = kKFp8 ? kFp8Max : kInt8Max;
  const float inv = amax > 0.0f ? __fdiv_rn(kKTarget, amax) : 0.0f;
  if (tid == 0) a.k_scale[static_cast<int64_t>(hk) * blocks + blk] = __fdiv_rn(amax, kKTarget);
#pragma unroll
  for (int i = 0; i < C::kUnits; ++i) {
    float x[8];
    if constexpr (kRot) {
#pragma unroll
      for (int e = 0; e < 8; ++e) x[e] = kept[i][e];
    } else {
      smoothedK(i, x);
    }
    uint32_t w[2] = {0u, 0u};
    const int jj = jj0 + i * C::kRowStep;
    const int64_t krow = static_cast<int64_t>(hk) * a.total_kp + key0 + jj;
#pragma unroll
    for (int e = 0; e < 8; ++e) {  // slot[e] is a constant -1 without kOutl
      if (slot[e] >= 0) a.ko[krow * kQuantOutliers + slot[e]] = f16Bits(__fmul_rn(x[e], ko_pow2));
      w[e >> 2] |= quantCode<kKFp8>(slot[e] >= 0 ? 0.0f : x[e], inv) << (8 * (e & 3));
    }
    *reinterpret_cast<uint2*>(a.k8 + krow * D + cc * 8) = make_uint2(w[0], w[1]);
  }

  // V: channel scale, fp8 / f16, transposed through shared memory (padding keys load as zeros).
#pragma unroll
  for (int i = 0; i < C::kUnits; ++i) {
    const int jj = VChunks<D, kWarps>::key(i);
    float y[8];
    unpack8<T>(vr[i], y);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int c = vc * 8 + e;
      const float z = __fmul_rn(y[e], vinv[e]);
      if constexpr (kFp8) {
        s_vt[vtOffset<1>(c, fp8KeySlot(jj))] = static_cast<unsigned char>(__nv_cvt_float_to_fp8(z, __NV_SATFINITE, __NV_E4M3));
      } else {
        *reinterpret_cast<__half*>(s_vt + vtOffset<2>(c, 2 * jj)) = __float2half_rn(z);
      }
    }
  }
  __syncthreads();
  constexpr int kRowChunks = kBlockN * kVBytes / 16;  // 16-byte chunks per V^T row of the block
  for (int u = tid; u < D * kRowChunks; u += kThreads) {
    const int c = u / kRowChunks, q = u % kRowChunks;
    unsigned char* dst = static_cast<unsigned char*>(a.vt) +
                         ((static_cast<int64_t>(hk) * D + c) * a.total_kp + key0) * kVBytes + q * 16;
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(s_vt + vtOffset<kVBytes>(c, q * 16));
  }
}

// Q rows [(cta * kWarps + warp) * kQRows, + kQRows) of the (token, head) pairs (head fastest).
// A row lies on the 4 lanes of a quad, kPer = D / 4 consecutive channels a lane, so 2 of the
// rotation's butterfly levels are shuffles (rotateRowLanes) and a row's sums and maxima 2 more;
// quad g takes rows g + 8 p of the warp's kQRows (passes p), all loaded first.
template <typename T, int D, bool kFp8, bool kOutl>
__device__ void quantQRows(const QuantArgs& a, int64_t cta) {
  constexpr int kQuad = 4, kPer = D / kQuad;  // lanes a row, channels a lane
  constexpr int kRowsPerPass = 32 / kQuad, kPasses = kQRows / kRowsPerPass;
  constexpr bool kRot = quantRotates(kOutl, D);
  static_assert(kQRows <= 32 && kPasses * kRowsPerPass == kQRows, "a lane locates each row");
  static_assert(kPer % 16 == 0, "a lane loads and stores whole 16-byte chunks of its channels");
  const int lane = threadIdx.x & 31, g = lane / kQuad, t = lane % kQuad;
  const int64_t rows = static_cast<int64_t>(a.total_q) * a.heads_q;
  const int64_t row0 = (cta * kWarps + (threadIdx.x >> 5)) * kQRows;
  // Lane r locates row row0 + r (the sequence searches run side by side): its element offset in
  // q, its K mean's offset, and its q8 row (head-major).
  int64_t q_off = 0, mean_off = 0, q_row = 0;
  if (lane < kQRows && row0 + lane < rows) {
    const int64_t w = row0 + lane;
    const int tok = static_cast<int>(w / a.heads_q);
    const int h = static_cast<int>(w - static_cast<int64_t>(tok) * a.heads_q);
    const int b = seqOf(a.q_start, a.batch, tok);
    const int i = tok - __ldg(a.q_start + b);
    q_off = (a.varlen ? static_cast<int64_t>(__ldg(a.q_start + b)) * a.q_row_stride : b * a.q_batch_stride) +
            static_cast<int64_t>(i) * a.q_row_stride + static_cast<int64_t>(h) * a.q_head_stride;
    mean_off = (static_cast<int64_t>(b) * a.heads_kv + h / a.group) * D;
    q_row = static_cast<int64_t>(h) * a.total_q + tok;
  }
  float x[kPasses][kPer];
#pragma unroll
  for (int ps = 0; ps < kPasses; ++ps) {
    const int r = g + kRowsPerPass * ps;
    const int64_t off = __shfl_sync(0xffffffffu, q_off, r);
#pragma unroll
    for (int u = 0; u < kPer / 8; ++u) {
      const uint4 v = row0 + r < rows ? load16(a.q, off + t * kPer + 8 * u) : make_uint4(0u, 0u, 0u, 0u);
      float y[8];
      unpack8<T>(v, y);
#pragma unroll
      for (int e = 0; e < 8; ++e) x[ps][8 * u + e] = y[e];
    }
  }
#pragma unroll
  for (int ps = 0; ps < kPasses; ++ps) {
    const int r = g + kRowsPerPass * ps;
    const bool valid = row0 + r < rows;
    const int64_t m_off = __shfl_sync(0xffffffffu, mean_off, r);
    const int64_t r_row = __shfl_sync(0xffffffffu, q_row, r);
    // q . mean_k (unrotated q), then the (rotated) |q| maxima, over the quad.
    float dot = 0.0f;
    if (valid) {
      float mean[8];
#pragma unroll
      for (int u = 0; u < kPer / 8; ++u) {
        load8f(a.k_mean + m_off + t * kPer + 8 * u, mean);
#pragma unroll
        for (int e = 0; e < 8; ++e) dot = fmaf(x[ps][8 * u + e], mean[e], dot);
      }
    }
    if constexpr (kRot) rotateRowLanes<kPer, D>(x[ps], t);
    // This lane's outlier channels: their place in the Qo row, else -1 (a constant without kOutl).
    int slot[kPer];
    if constexpr (kOutl) {
      outlierSlots(a.outl + (m_off / D) * kQuantOutliers, t * kPer, slot);
    } else {
#pragma unroll
      for (int e = 0; e < kPer; ++e) slot[e] = -1;
    }
    float amax = 0.0f, amax_out = 0.0f;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      if (slot[e] >= 0) {
        amax_out = fmaxf(amax_out, fabsf(x[ps][e]));
      } else {
        amax = fmaxf(amax, fabsf(x[ps][e]));
      }
    }
#pragma unroll
    for (int m = 1; m < kQuad; m <<= 1) {
      dot += __shfl_xor_sync(0xffffffffu, dot, m);
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, m));
      if constexpr (kOutl) amax_out = fmaxf(amax_out, __shfl_xor_sync(0xffffffffu, amax_out, m));
    }
    if (!valid) continue;
    constexpr float kTarget = kFp8 ? kFp8Max : kInt8Max;
    if (t == 0) {
      // Rotated: (Q R)(K R)^T = D Q K^T, so the scale takes 1 / D (exact, a power of two).
      a.q_scale[r_row] = kRot ? __fmul_rn(__fdiv_rn(amax, kTarget), 1.0f / D) : __fdiv_rn(amax, kTarget);
      a.q_mean[r_row] = a.scale * dot;
      if constexpr (kOutl) a.qo_scale[r_row] = __fdiv_rn(1.0f, outlierPow2(amax_out));
    }
    const float inv = amax > 0.0f ? __fdiv_rn(kTarget, amax) : 0.0f;
    const float qo_pow2 = kOutl ? outlierPow2(amax_out) : 1.0f;
    uint32_t packed[kPer / 4] = {};
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      if (slot[e] >= 0) a.qo[r_row * kQuantOutliers + slot[e]] = f16Bits(__fmul_rn(x[ps][e], qo_pow2));
      packed[e / 4] |= quantCode<kFp8>(slot[e] >= 0 ? 0.0f : x[ps][e], inv) << (8 * (e % 4));
    }
    uint4* dst = reinterpret_cast<uint4*>(a.q8 + r_row * D + t * kPer);
#pragma unroll
    for (int u = 0; u < kPer / 16; ++u) dst[u] = make_uint4(packed[4 * u], packed[4 * u + 1], packed[4 * u + 2], packed[4 * u + 3]);
  }
}

// CTAs per SM the quantize launch is compiled for. Without outlier channels: d128 4 (128
// registers, no spills; unbounded, ptxas would take 194-253 for its unrolled loads), d64 6 (80).
// With the opt-in outlier channels: d128 3, d64 4; held there they spill on sm_90a 0-52 bytes at
// d128 and none at d64, on sm_80 up to 40 and 20 bytes; unbounded they would take 255 and 159-198
// registers (fewer CTAs), a worse trade for a path that is 19-28% slower anyway.
constexpr int quantizeMinCtas(int d, bool outliers) { return d == 128 ? (outliers ? 3 : 4) : (outliers ? 4 : 6); }

// CTAs [0, blocks * heads_kv): K/V blocks, the last first (the stats launch read it last, so it
// may still be in L2); the rest: Q rows.
template <typename T, int D, bool kFp8, bool kKFp8, bool kOutl>
__global__ void __launch_bounds__(kThreads, quantizeMinCtas(D, kOutl)) quantizeKernel(const QuantArgs a) {
  const int blocks = a.total_kp / kBlockN;
  const int64_t kv_ctas = static_cast<int64_t>(blocks) * a.heads_kv;
  const int64_t x = blockIdx.x;
  if (x < kv_ctas) {
    const int64_t r = kv_ctas - 1 - x;
    quantKvBlock<T, D, kFp8, kKFp8, kOutl>(a, static_cast<int>(r % blocks), static_cast<int>(r / blocks));
  } else {
    quantQRows<T, D, kKFp8, kOutl>(a, x - kv_ctas);
  }
}

template <typename T, int D, bool kOutl>
void launchPrep(const QuantArgs& a, QuantMode mode, bool keyless_seqs, cudaStream_t stream) {
  const int blocks = a.total_kp / kBlockN;
  const unsigned stats_ctas = static_cast<unsigned>(blocks + (keyless_seqs ? a.batch : 0));
  statsKernel<T, D, kOutl><<<dim3(stats_ctas, a.heads_kv), kThreads, 0, stream>>>(a);
  ATTN_CUDA_CHECK_LAUNCH();
  constexpr int kQRowsPerCta = kWarps * kQRows;
  const int64_t q_rows = static_cast<int64_t>(a.total_q) * a.heads_q;
  const int64_t q_ctas = (q_rows + kQRowsPerCta - 1) / kQRowsPerCta;
  const auto grid = static_cast<unsigned>(static_cast<int64_t>(blocks) * a.heads_kv + q_ctas);
  if (mode == QuantMode::Fp8) {
    quantizeKernel<T, D, true, true, kOutl><<<grid, kThreads, 0, stream>>>(a);
  } else if (mode == QuantMode::Int8Fp8) {
    quantizeKernel<T, D, true, false, kOutl><<<grid, kThreads, 0, stream>>>(a);
  } else {
    quantizeKernel<T, D, false, false, kOutl><<<grid, kThreads, 0, stream>>>(a);
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launchPrepForType(const QuantArgs& a, QuantMode mode, bool keyless_seqs, cudaStream_t stream) {
  if (a.head_dim == 64) {
    a.outliers ? launchPrep<T, 64, true>(a, mode, keyless_seqs, stream) : launchPrep<T, 64, false>(a, mode, keyless_seqs, stream);
  } else {
    a.outliers ? launchPrep<T, 128, true>(a, mode, keyless_seqs, stream) : launchPrep<T, 128, false>(a, mode, keyless_seqs, stream);
  }
}

}  // namespace

void launchQuantPrep(const QuantArgs& a, QuantMode mode, bool keyless_seqs, cudaStream_t stream) {
  if (a.in_bf16 != 0) {
    launchPrepForType<__nv_bfloat16>(a, mode, keyless_seqs, stream);
  } else {
    launchPrepForType<__half>(a, mode, keyless_seqs, stream);
  }
}

}  // namespace attn::cuda::quant
