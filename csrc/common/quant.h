// Quantization rules shared bit for bit by the CPU emulation (csrc/cpu/quant_attention.cpp,
// csrc/cpu/paged_attention.cpp) and the CUDA kernels (csrc/cuda/quant, csrc/cuda/paged).
//
// Quantized forward (SageAttention-style), per sequence b and kv head:
//   K is smoothed: k'[j] = k[j] - mean_j(k) (float32 mean over the sequence's keys: per block of
//   kQuantKeyBlock keys a sum in key order, those sums added in block order, / key count). Softmax is
//   invariant to it (each row's scores shift by the constant q . mean), the returned lse adds
//   scale * q . mean back.
//   Q: int8 with one scale per (token, head): s = amax / 127, q8 = rne(q * (127 / amax)).
//   K': int8 with one scale per (block of kQuantKeyBlock keys, kv head), blocks aligned to key 0.
//   V: one scale per (sequence, kv head, channel): vs = amax / kQuantVTarget, stored
//      v * (kQuantVTarget / amax) as fp8 e4m3 (mode int8-fp8) or f16 (mode int8).
//   Mode fp8: Q and K' in fp8 e4m3 instead, same granularity: s = amax / 448, stored
//      e4m3(x * (448 / amax)) (round to nearest even, saturating); P and V as int8-fp8.
//   Scores: float(int32 dot) * (q_scale * k_scale) (fp8: the dot of the e4m3 values, summed in
//   float32 by the tensor cores, in double by the CPU emulation); online softmax over key blocks of
//   kQuantKeyBlock keys, last block first (the order the CUDA kernel walks them); P = exp(s - m)
//   with m the running max after the block, stored as fp8(P * kQuantPScale)
//   (int8-fp8, fp8) or f16(P) (int8); the row sum uses the unquantized P; o = acc * vs / (P scale * sum).
// Outlier channels (AttnParams::quant_outliers, off by default: they cost the kernels 19-28% on
//   the H100): per (sequence, kv head), the quantOutlierCount(D) channels of largest K
//   variance (sum of k^2 per key block in key order, blocks in order, / key count, minus mean^2;
//   ties to the lower channel) stay out of the 8-bit Q.K: Q8 and K' hold 0 there and the Q and K
//   scales come from the other channels. Their q and smoothed k go to f16 times a power of two
//   (outlierPow2: max |.| into [2^13, 2^14); q per (token, head), k per (sequence, kv head)), and
//   the f16 dot over them (f32 sums), divided by the two powers, joins the dequantized 8-bit dot.
//   A few channels that are large in both Q and K otherwise set both int8 scales and their own
//   rounding, multiplied by the other side's large values, dominates the score error.
// Rotation (quantRotates: every mode, without outlier channels, head dim a power of two): before
//   the 8-bit rounding, every Q row and smoothed K row x becomes x diag(s) H, with s[c] = -1 where
//   rotationNegates(c), else 1, and H the D x D Sylvester Hadamard matrix (entries +-1,
//   H H^T = D I). So (Q diag(s) H)(K' diag(s) H)^T = D Q K'^T, and the Q scale is amax / target / D
//   (a power of two more). A few outlier channels otherwise set a row's or a block's 8-bit step
//   (int8) or dominate the dot's rounding error (e4m3); rotated, their energy spreads over all D
//   channels ('incoherent processing', as FlashAttention-3's FP8 path and QuaRot do). The signs
//   keep a structured row (a constant offset in Q) from landing on one channel, as H alone would
//   send it. Measured on the CPU backend, heavy-tailed inputs, relative L2 of the output
//   (docs/perf.md): int8 0.020 -> 0.012 (the tests' inputs) and 0.053 -> 0.012 (outliers shared by
//   Q and K); fp8 0.26 -> 0.07 on the latter; N(0, 1) inputs unchanged. In float32, in this order
//   (both backends): y[c] = s[c] < 0 ? -x[c] : x[c]; then for len = 1, 2, 4, ..., D / 2, every pair
//   (c, c + len) with (c & len) == 0 becomes (y[c] + y[c + len], y[c] - y[c + len]).
// A zero amax gives scale 0 and quantized zeros (never a division by zero).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "dtype.h"

namespace attn {

constexpr int kQuantKeyBlock = 64;      // keys per K scale (= the CUDA kernel's key tile)
constexpr float kQuantVTarget = 448.0f;  // |v| max per channel maps here (e4m3 max)
constexpr float kQuantPScaleFp8 = 448.0f;
constexpr float kInt8Max = 127.0f;
constexpr float kFp8Max = 448.0f;

// The `quantized` option of attention(): 0 = off.
enum class QuantMode : int32_t { None = 0, Int8Fp8 = 1, Int8 = 2, Fp8 = 3 };

// Whether P and V are e4m3 (else f16), and whether Q and K are e4m3 (else int8).
constexpr bool quantPvFp8(QuantMode m) { return m == QuantMode::Int8Fp8 || m == QuantMode::Fp8; }
constexpr bool quantQkFp8(QuantMode m) { return m == QuantMode::Fp8; }

// Quantization multiplier `target / amax` (0 when amax is 0), as both backends compute it.
inline float quantInverse(float target, float amax) { return amax > 0.0f ? target / amax : 0.0f; }
// Dequantization scale `amax / target`.
inline float quantScale(float target, float amax) { return amax / target; }

// Whether the quantized forward rotates Q and K before their 8-bit rounding (see the top).
#if defined(__CUDACC__)
__host__ __device__
#endif
constexpr bool quantRotates(bool outliers, int head_dim) {
  return !outliers && head_dim > 1 && (head_dim & (head_dim - 1)) == 0;
}

// Sign of channel c in the rotation: one bit of an integer hash of c, a fixed pattern far from
// every row of H at the head dims used (max |H s| / D: 0.34 at 64, 0.22 at 128; a row of H gives
// 1), so diag(s) H spreads a constant row instead of sending it to one channel.
#if defined(__CUDACC__)
__host__ __device__
#endif
constexpr bool rotationNegates(int c) {
  uint32_t h = static_cast<uint32_t>(c) * 0x9E3779B1u + 0x7F4A7C15u;
  h ^= h >> 15;
  h *= 0x85EBCA77u;
  h ^= h >> 13;
  return (h >> 31) != 0;
}

// x diag(s) H in place, one row of D channels, in the float order above (the CPU backend's; the
// CUDA preprocessing's lane-split version, csrc/cuda/quant/rotate_row.cuh, matches it bit for bit).
inline void rotateRow(float* x, int D) {
  for (int c = 0; c < D; ++c)
    if (rotationNegates(c)) x[c] = -x[c];
  for (int len = 1; len < D; len <<= 1)
    for (int c = 0; c < D; ++c)
      if ((c & len) == 0) {
        const float a = x[c], b = x[c + len];
        x[c] = a + b;
        x[c + len] = a - b;
      }
}

// Outlier channels per (sequence, kv head) (16 at head dims >= 64; one f16 k16 MMA step).
constexpr int kQuantOutliers = 16;
inline int quantOutlierCount(int head_dim) { return std::min(kQuantOutliers, head_dim / 4); }

// Rank of channel c among the D variances (0 = largest; NaN ranks as -inf; ties to the lower
// channel): channels of rank < quantOutlierCount(D) are the outliers. A total order, so exactly
// that many are picked whatever the values.
#if defined(__CUDACC__)
__host__ __device__
#endif
inline int outlierRank(const float* var, int D, int c) {
  const auto key = [](float x) { return x == x ? x : -INFINITY; };
  const float vc = key(var[c]);
  int rank = 0;
  for (int d = 0; d < D; ++d) {
    const float vd = key(var[d]);
    rank += (vd > vc || (vd == vc && d < c)) ? 1 : 0;
  }
  return rank;
}

// The power of two p with amax * p in [2^13, 2^14) (1 for amax 0): f16 keeps 11 bits at any
// magnitude in range, and the products of two such values stay far below f16's and f32's limits.
#if defined(__CUDACC__)
__host__ __device__
#endif
inline float outlierPow2(float amax) {
  if (!(amax > 0.0f)) return 1.0f;
  int e = 0;
  frexpf(amax, &e);  // amax = m * 2^e, m in [0.5, 1)
  const int shift = 14 - e;
  return ldexpf(1.0f, shift < -100 ? -100 : shift > 100 ? 100 : shift);
}

// Round to nearest even and clamp to [-127, 127].
inline int8_t quantizeInt8(float x, float inv) {
  float r = std::nearbyint(x * inv);
  r = std::fmin(std::fmax(r, -kInt8Max), kInt8Max);
  return static_cast<int8_t>(r);
}

}  // namespace attn

// Quantized paged KV cache (PagedKVCache dtype fp8e4m3 / int8): one float32 scale per
// (token, kv head) for K and for V, in a scale pool beside the pages. Quantized on append:
//   fp8e4m3: scale = amax / 448, stored e4m3(x * (448 / amax));
//   int8:    scale = amax / 127, stored rne(x * (127 / amax)) clamped to +-127.
// Dequantized inside attention as stored * scale (the CUDA decode kernel converts the 8-bit
// values exactly to 16 bits and folds the K scale into the score, the V scale into P).
// Before that, int8 caches equalize channels (see PagedAppendParams): K by (k - mean) / k_chan, V
// by v / v_chan, the channel scales being the channels' max |.| over the layer's first append.
// int8's step is absolute (amax / 127), so without it outlier channels coarsen every other
// channel. e4m3 keeps its relative precision at any magnitude, and there equalization measured
// worse on heavy-tailed data (the row max, stored exactly, no longer falls on the dominant
// outlier channels; CPU draws: rel. L2 0.023 -> 0.041 at d256): fp8 caches keep scales of 1.
namespace attn {
constexpr float kvQuantTarget(bool fp8) { return fp8 ? kFp8Max : kInt8Max; }
// Channel scale of an 8-bit cache from a channel's max |x| (1 for fp8 and for an all-zero channel).
#if defined(__CUDACC__)
__host__ __device__
#endif
inline float channelScale(DType cache, float amax) { return cache == DType::INT8 && amax > 0.0f ? amax : 1.0f; }
}  // namespace attn
