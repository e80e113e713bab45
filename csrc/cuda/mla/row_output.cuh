// The last step of both MLA decode kernels (decode_kernel.cuh, decode_sm90.cuh) for one (query
// row, head) row: its output columns, normalized, into the split workspace (num_splits > 1) or o,
// and its lse. Both kernels hold O in the m16n8 accumulator layout, where a lane owns column pairs
// col0 + 8 j (+ 0, + 1).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../common/ptx.cuh"
#include "mla_internal.h"

namespace attn::cuda::mla {

// Writes pairs value(j, 0), value(j, 1) (j < kPairs) times 1 / L at columns col0 + 8 j, and, where
// lse_lane, the natural-log lse M ln 2 + ln L (M: the row max in log2 units; -inf for L = 0).
template <typename T, int kPairs, typename Value>
__device__ __forceinline__ void storeMlaRow(const MlaArgs& a, int split, int grow, int h, int col0, float L, float M,
                                            bool lse_lane, Value value) {
  constexpr float kLn2 = 0.6931471805599453f;
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  const float inv = L > 0.0f ? 1.0f / L : 0.0f;
  const int64_t pair = static_cast<int64_t>(grow) * a.heads + h;
  const bool split_out = a.num_splits > 1;
  if (split_out) {
    float* dst = a.ws_o + (static_cast<int64_t>(split) * a.total_q * a.heads + pair) * kMlaLatent + col0;
#pragma unroll
    for (int j = 0; j < kPairs; ++j) *reinterpret_cast<float2*>(dst + 8 * j) = make_float2(value(j, 0) * inv, value(j, 1) * inv);
  } else {
    T* dst = static_cast<T*>(a.o) + static_cast<int64_t>(grow) * a.o_row_stride + static_cast<int64_t>(h) * a.o_head_stride + col0;
#pragma unroll
    for (int j = 0; j < kPairs; ++j) *reinterpret_cast<uint32_t*>(dst + 8 * j) = ElemTraits<T>::pack(value(j, 0) * inv, value(j, 1) * inv);
  }
  if (lse_lane) {
    const float lse = L > 0.0f ? M * kLn2 + logf(L) : kNegInf;
    if (split_out) a.ws_lse[static_cast<int64_t>(split) * a.total_q * a.heads + pair] = lse;
    else if (a.lse) a.lse[pair] = lse;
  }
}

}  // namespace attn::cuda::mla
