// The Q/K rotation of the quantized preprocessing (csrc/common/quant.h) on a row split over lanes.
// Device code only; test/native/rotate_row_lanes.cpp runs it on the host with 32 threads as lanes
// (shims for the shuffle and the rounded adds) against the CPU backend's rotateRow.
#pragma once
#include "../../common/quant.h"

namespace attn::cuda::quant {

// x diag(s) H (the rotation of csrc/common/quant.h, its order of float operations) of a row of D
// channels spread over D / kPer lanes: this lane holds channels chunk * kPer .. + kPer - 1, and the
// row's lanes differ only in the low bits of the lane index (chunk = lane % (D / kPer)). Pairs
// closer than kPer lie in this lane; the others are one shuffle apart. The whole warp calls it.
template <int kPer, int D>
__device__ __forceinline__ void rotateRowLanes(float (&x)[kPer], int chunk) {
  static_assert(D / kPer <= 32 && (D & (D - 1)) == 0 && (kPer & (kPer - 1)) == 0, "a row's lanes share a warp");
#pragma unroll
  for (int e = 0; e < kPer; ++e) x[e] = rotationNegates(chunk * kPer + e) ? -x[e] : x[e];
#pragma unroll
  for (int len = 1; len < kPer; len <<= 1)
#pragma unroll
    for (int e = 0; e < kPer; ++e)
      if ((e & len) == 0) {
        const float lo = x[e], hi = x[e + len];
        x[e] = __fadd_rn(lo, hi);
        x[e + len] = __fsub_rn(lo, hi);
      }
#pragma unroll
  for (int m = 1; m < D / kPer; m <<= 1) {  // len = m * kPer: the partner is lane ^ m
    const bool upper = (chunk & m) != 0;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      const float other = __shfl_xor_sync(0xffffffffu, x[e], m);
      x[e] = upper ? __fsub_rn(other, x[e]) : __fadd_rn(x[e], other);
    }
  }
}

}  // namespace attn::cuda::quant
