// The decode tile math with the keys on the MMA's M side, for CTAs of at most 8 (query row, head)
// pairs (a decode step of a KV group of <= 8 query heads): S^T = K Q^T and O^T += V^T P^T on
// mma.sync m16n8k16, the pairs on N (8).
//
// Why: with the pairs on M (decode_kernel.cuh's layout) a 16-row MMA carries 4 real rows of GQA
// 32/8, so 3/4 of its issue slots, accumulators and softmax work are padding. At batch 1 the kernel
// is bound by instruction latency (docs/perf.md runs 23 and 44), so padding is time. Here each
// warp's 16 keys of a tile take D / 16 MMAs for S (Q^T's fragments stay in registers) and D / 16
// for P V, against D / 8 each with the pairs on M, and the output accumulator is D x 8, not 16 x D.
//
// Fragments (g = lane / 4, t4 = lane % 4): S^T holds keys g and g + 8 of the warp's 16 for pairs
// 2 t4 and 2 t4 + 1; O^T holds channels 16 mt + g and + 8 for the same pairs. P^T becomes the B
// operand of P V by one movmatrix per 8 keys.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../common/ptx.cuh"
#include "decode_common.cuh"

namespace attn::cuda::paged {

// (query row, head) pairs a keys-on-M CTA carries.
constexpr int kDecodePairsKeysOnM = 8;

// One lane's running state: O^T accumulators (channels 16 mt + g, + 8; pairs 2 t4 + e), the
// running max per pair (the same in every lane of a pair) and the lane's partial sums.
template <int D>
struct DecodeStateKeysOnM {
  float o[D / 16][4];  // [mt][e + 2 h]: channel 16 mt + g + 8 h, pair 2 t4 + e
  float m[2], l[2];

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int i = 0; i < D / 16; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    m[0] = m[1] = __int_as_float(static_cast<int>(0xff800000u));
    l[0] = l[1] = 0.0f;
  }
};

// Q^T's B fragments of every 16-channel step from the swizzled Q tile (pairs 0-7 as rows): kept
// in registers for the CTA's whole key range.
template <int D>
__device__ __forceinline__ void loadQKeysOnM(uint32_t (&qb)[D / 16][2], uint32_t s_q, int lane) {
#pragma unroll
  for (int ks = 0; ks < D / 16; ks += 2) {  // one x4 = channel chunks 2 ks .. 2 ks + 3
    uint32_t r[4];
    ldmatrixX4(r, s_q + swz<D>(lane & 7, 2 * ks + (lane >> 3)));
    qb[ks][0] = r[0];
    qb[ks][1] = r[1];
    qb[ks + 1][0] = r[2];
    qb[ks + 1][1] = r[3];
  }
}

// One 64-key tile of the warp's 16 keys: scores (log2 units, softcap / ALiBi, masks), the online
// softmax step and O^T += V^T P^T. sk / sv: the swizzled [64][D] K and V tiles; ts: their first key;
// rows: the lane's pairs 2 t4 and 2 t4 + 1 (decodeRowsAt).
template <typename T, int D>
__device__ __forceinline__ void decodeTileKeysOnM(const DecodeArgs& a, const DecodeCta& c, const DecodeRows& rows,
                                                  const uint32_t (&qb)[D / 16][2], uint32_t sk, uint32_t sv, int ts,
                                                  DecodeStateKeysOnM<D>& st) {
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2;
  // ldmatrix rows: K as the row-major A operand; V through .trans as the A operand V^T.
  const int k_row = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, k_chunk = lane >> 4;
  const int v_row = warp * 16 + (lane & 7) + ((lane >> 4) & 1) * 8, v_chunk = (lane >> 3) & 1;

  // S^T: even and odd channel steps accumulate apart, two dependent MMA chains of half the length.
  float s[4] = {0.0f, 0.0f, 0.0f, 0.0f}, s_odd[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
  for (int ks = 0; ks < D / 16; ++ks) {
    uint32_t ka[4];
    ldmatrixX4(ka, sk + swz<D>(k_row, 2 * ks + k_chunk));
    mma16816<T>((ks & 1) ? s_odd : s, ka, qb[ks][0], qb[ks][1]);
  }

  // Scores: s[e + 2 h] is key ts + warp * 16 + g + 8 h of pair 2 t4 + e.
  const bool transform = a.has_softcap || a.alibi != nullptr;
  const bool need_mask = c.any_empty || ts < c.max_lo || ts + kDecodeTileKeys > c.tile_hi;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int e = i & 1;
    const int j = ts + warp * 16 + g + (i >> 1) * 8;
    const float raw = s[i] + s_odd[i];
    float x;
    if (!transform) {
      x = raw * a.scale_log2;
    } else {
      x = a.has_softcap ? a.softcap_log2 * tanhf(raw * a.softcap_scale) : raw * a.scale_log2;
      x -= rows.slope[e] * fabsf(static_cast<float>(rows.pos[e] - j));
    }
    if (need_mask && (j < rows.lo[e] || j >= rows.hi[e])) x = kNegInf;
    s[i] = x;
  }

  // Online softmax per pair: the max over the warp's 16 keys (lanes of one t4), then P.
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    float mx = fmaxf(s[e], s[2 + e]);
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
    const float m_new = fmaxf(st.m[e], mx);
    const float m_use = m_new == kNegInf ? 0.0f : m_new;  // every key so far masked: keep exp2 finite
    const float alpha = exp2f(st.m[e] - m_use);           // st.m == -inf -> 0
    st.m[e] = m_new;
    const float p0 = exp2f(s[e] - m_use), p1 = exp2f(s[2 + e] - m_use);
    s[e] = p0;
    s[2 + e] = p1;
    st.l[e] = st.l[e] * alpha + p0 + p1;
#pragma unroll
    for (int mt = 0; mt < D / 16; ++mt) {
      st.o[mt][e] *= alpha;
      st.o[mt][2 + e] *= alpha;
    }
  }

  // P^T as the B operand: lane holds P[key g (+8)][pairs 2 t4, 2 t4 + 1]; movmatrix gives
  // P^T's fragment P[pair g][keys 2 t4, 2 t4 + 1] (+ 8).
  const uint32_t pb0 = movmatrixTrans(ElemTraits<T>::pack(s[0], s[1]));
  const uint32_t pb1 = movmatrixTrans(ElemTraits<T>::pack(s[2], s[3]));
#pragma unroll
  for (int mt = 0; mt < D / 16; ++mt) {
    uint32_t va[4];
    ldmatrixX4Trans(va, sv + swz<D>(v_row, 2 * mt + v_chunk));
    mma16816<T>(st.o[mt], va, pb0, pb1);
  }
}

// Epilogue of a keys-on-M CTA: the warps' (m, l, O^T) per pair merged through shared memory into
// s_o's [warp][pair][channel] rows, the lse stored, then decodeEpilogueOut as for the other layout.
template <typename T, int D, int kCombineBatch>
__device__ __forceinline__ void decodeEpilogueKeysOnM(const DecodeArgs& a, const DecodeCta& c, DecodeStateKeysOnM<D>& st,
                                                      float* s_o) {
  __shared__ DecodeMergeSmem ms;
  constexpr int kOStride = kDecodeOStride<D>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;

  cpAsyncWait<0>();
  __syncthreads();  // every warp is done with the pipeline buffers
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    st.l[e] += __shfl_xor_sync(0xffffffffu, st.l[e], 4);
    st.l[e] += __shfl_xor_sync(0xffffffffu, st.l[e], 8);
    st.l[e] += __shfl_xor_sync(0xffffffffu, st.l[e], 16);
    if (g == 0) {
      ms.m[warp][2 * t4 + e] = st.m[e];
      ms.l[warp][2 * t4 + e] = st.l[e];
    }
  }
  __syncthreads();

#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int row = 2 * t4 + e;
    float M, L;
    const float fac = mergeWarpRow(ms, row, st.m[e], M, L);
    float* dst = s_o + (warp * kDecodeRows + row) * kOStride;
#pragma unroll
    for (int mt = 0; mt < D / 16; ++mt) {
      dst[16 * mt + g] = st.o[mt][e] * fac;
      dst[16 * mt + g + 8] = st.o[mt][2 + e] * fac;
    }
    if (warp == 0 && g == 0 && row < c.mrows) storeDecodeLse(a, c, row, M, L, ms.lse);
  }
  decodeEpilogueOut<T, D, kCombineBatch>(a, c, s_o, ms.lse);
}

}  // namespace attn::cuda::paged
