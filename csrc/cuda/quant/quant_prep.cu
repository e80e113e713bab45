// Preprocessing of the quantized forward (rules: csrc/common/quant.h). Four launches:
//   stats:    per (key block, kv head): the block's per-channel K sum and |V| max;
//   finalize: per (sequence, kv head): K mean (blocks summed in order), V scale and inverse;
//   kv:       per (key block, kv head): smoothed K -> int8 (e4m3 in mode fp8) with the block scale;
//             V -> fp8 / f16 with the channel scales, written transposed (V^T [D][keys], keys
//             permuted for fp8);
//   q:        one warp per (token, head): int8 (e4m3) with the token scale, and scale * q . mean_k.
// Sums run in the order the CPU emulation uses, and every division is correctly rounded
// (__fdiv_rn: --use_fast_math would otherwise approximate it), so the quantized values match it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "../check.h"
#include "quant_internal.h"

namespace attn::cuda::quant {
namespace {

__device__ __forceinline__ float loadElem(const void* base, int64_t i, bool bf16) {
  const uint16_t bits = __ldg(static_cast<const uint16_t*>(base) + i);
  return bf16 ? __bfloat162float(__ushort_as_bfloat16(bits)) : __half2float(__ushort_as_half(bits));
}

// 8 consecutive elements (16-byte aligned) as floats.
__device__ __forceinline__ void load8(const void* base, int64_t i, bool bf16, float (&x)[8]) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(base) + i));
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const uint16_t lo = static_cast<uint16_t>(w[e] & 0xffffu), hi = static_cast<uint16_t>(w[e] >> 16);
    x[2 * e] = bf16 ? __bfloat162float(__ushort_as_bfloat16(lo)) : __half2float(__ushort_as_half(lo));
    x[2 * e + 1] = bf16 ? __bfloat162float(__ushort_as_bfloat16(hi)) : __half2float(__ushort_as_half(hi));
  }
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

__global__ void __launch_bounds__(kThreads) statsKernel(const QuantArgs a) {
  const int blk = blockIdx.x, hk = blockIdx.y;
  const int blocks = a.total_kp / kBlockN;
  const int key0 = blk * kBlockN;
  const int b = seqOf(a.kp_start, a.batch, key0);
  const int j0 = key0 - __ldg(a.kp_start + b);
  const int len = __ldg(a.k_start + b + 1) - __ldg(a.k_start + b);
  const int n = min(kBlockN, len - j0);  // may be <= 0 for a pure padding block
  const bool bf16 = a.in_bf16 != 0;
  for (int c = threadIdx.x; c < a.head_dim; c += kThreads) {
    float sum = 0.0f, mx = 0.0f;
    for (int jj = 0; jj < n; ++jj) {
      const int j = j0 + jj;
      sum = __fadd_rn(sum, loadElem(a.k, keyOffset(a, a.k_batch_stride, a.k_row_stride, a.k_head_stride, b, j, hk) + c, bf16));
      mx = fmaxf(mx, fabsf(loadElem(a.v, keyOffset(a, a.v_batch_stride, a.v_row_stride, a.v_head_stride, b, j, hk) + c, bf16)));
    }
    const int64_t idx = (static_cast<int64_t>(hk) * blocks + blk) * a.head_dim + c;
    a.k_part[idx] = sum;
    a.v_part[idx] = mx;
  }
}

__global__ void __launch_bounds__(kThreads) finalizeKernel(const QuantArgs a) {
  const int b = blockIdx.x, hk = blockIdx.y;
  const int blocks = a.total_kp / kBlockN;
  const int len = __ldg(a.k_start + b + 1) - __ldg(a.k_start + b);
  const int blk0 = __ldg(a.kp_start + b) / kBlockN;
  const int nb = (__ldg(a.kp_start + b + 1) - __ldg(a.kp_start + b)) / kBlockN;
  for (int c = threadIdx.x; c < a.head_dim; c += kThreads) {
    float total = 0.0f, vm = 0.0f;
    for (int i = 0; i < nb; ++i) {
      const int64_t idx = (static_cast<int64_t>(hk) * blocks + blk0 + i) * a.head_dim + c;
      total = __fadd_rn(total, a.k_part[idx]);
      vm = fmaxf(vm, a.v_part[idx]);
    }
    const int64_t o = (static_cast<int64_t>(b) * a.heads_kv + hk) * a.head_dim + c;
    a.k_mean[o] = len > 0 ? __fdiv_rn(total, static_cast<float>(len)) : 0.0f;
    a.v_scale[o] = __fdiv_rn(vm, kQuantVTarget);
    a.v_inv[o] = vm > 0.0f ? __fdiv_rn(kQuantVTarget, vm) : 0.0f;
  }
}

// Position of key jj (0..63) of a block in the fp8 V^T row: the mma.m16n8k32 A fragment of P
// holds, per 16-key group, keys 2t, 2t+1, 8+2t, 8+2t+1 of the S accumulators at k = 4t..4t+3,
// so V's keys are stored in that order (a permutation of the contraction axis).
__device__ __forceinline__ int fp8KeySlot(int jj) {
  const int r = jj & 15;
  const int slot = r < 8 ? 4 * (r >> 1) + (r & 1) : 4 * ((r - 8) >> 1) + 2 + (r & 1);
  return (jj & ~15) + slot;
}

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

// kFp8: V (and P) in e4m3, else f16; kKFp8: K in e4m3 (mode fp8), else int8.
template <int D, bool kFp8, bool kKFp8>
__global__ void __launch_bounds__(kThreads) quantKvKernel(const QuantArgs a) {
  constexpr int kChunks = D / 8;                       // 8-element chunks per key row
  constexpr int kUnits = kBlockN * kChunks / kThreads;  // chunks per thread
  constexpr int kVBytes = kFp8 ? 1 : 2;
  static_assert(kBlockN * kChunks % kThreads == 0, "units divide evenly");
  __shared__ float s_mean[D];
  __shared__ float s_vinv[D];
  __shared__ float s_red[kWarps];
  __shared__ __align__(16) unsigned char s_vt[D * kBlockN * kVBytes];

  const int blk = blockIdx.x, hk = blockIdx.y, tid = threadIdx.x;
  const int blocks = a.total_kp / kBlockN;
  const int key0 = blk * kBlockN;
  const int b = seqOf(a.kp_start, a.batch, key0);
  const int j0 = key0 - __ldg(a.kp_start + b);
  const int len = __ldg(a.k_start + b + 1) - __ldg(a.k_start + b);
  const bool bf16 = a.in_bf16 != 0;
  for (int c = tid; c < D; c += kThreads) {
    const int64_t o = (static_cast<int64_t>(b) * a.heads_kv + hk) * D + c;
    s_mean[c] = a.k_mean[o];
    s_vinv[c] = a.v_inv[o];
  }
  __syncthreads();

  // K: smooth, block absmax, int8.
  float x[kUnits][8];
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < kUnits; ++i) {
    const int u = tid + i * kThreads;
    const int jj = u / kChunks, cc = u % kChunks;
    const int j = j0 + jj;
    if (j < len) {
      load8(a.k, keyOffset(a, a.k_batch_stride, a.k_row_stride, a.k_head_stride, b, j, hk) + cc * 8, bf16, x[i]);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        x[i][e] = __fsub_rn(x[i][e], s_mean[cc * 8 + e]);
        amax = fmaxf(amax, fabsf(x[i][e]));
      }
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) x[i][e] = 0.0f;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  if ((tid & 31) == 0) s_red[tid >> 5] = amax;
  __syncthreads();
  amax = fmaxf(fmaxf(s_red[0], s_red[1]), fmaxf(s_red[2], s_red[3]));
  constexpr float kKTarget = kKFp8 ? kFp8Max : kInt8Max;
  const float inv = amax > 0.0f ? __fdiv_rn(kKTarget, amax) : 0.0f;
  if (tid == 0) a.k_scale[static_cast<int64_t>(hk) * blocks + blk] = __fdiv_rn(amax, kKTarget);
#pragma unroll
  for (int i = 0; i < kUnits; ++i) {
    const int u = tid + i * kThreads;
    const int jj = u / kChunks, cc = u % kChunks;
    uint32_t w[2] = {0u, 0u};
#pragma unroll
    for (int e = 0; e < 8; ++e) w[e >> 2] |= quantCode<kKFp8>(x[i][e], inv) << (8 * (e & 3));
    int8_t* dst = a.k8 + (static_cast<int64_t>(hk) * a.total_kp + key0 + jj) * D + cc * 8;
    *reinterpret_cast<uint2*>(dst) = make_uint2(w[0], w[1]);
  }

  // V: channel scale, fp8 / f16, transposed through shared memory.
#pragma unroll
  for (int i = 0; i < kUnits; ++i) {
    const int u = tid + i * kThreads;
    const int jj = u / kChunks, cc = u % kChunks;
    const int j = j0 + jj;
    float y[8];
    if (j < len) {
      load8(a.v, keyOffset(a, a.v_batch_stride, a.v_row_stride, a.v_head_stride, b, j, hk) + cc * 8, bf16, y);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) y[e] = 0.0f;
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int c = cc * 8 + e;
      const float z = __fmul_rn(y[e], s_vinv[c]);
      if constexpr (kFp8) {
        s_vt[c * kBlockN + fp8KeySlot(jj)] = static_cast<unsigned char>(__nv_cvt_float_to_fp8(z, __NV_SATFINITE, __NV_E4M3));
      } else {
        reinterpret_cast<__half*>(s_vt)[c * kBlockN + jj] = __float2half_rn(z);
      }
    }
  }
  __syncthreads();
  constexpr int kRowChunks = kBlockN * kVBytes / 16;  // 16-byte chunks per V^T row of the block
  for (int u = tid; u < D * kRowChunks; u += kThreads) {
    const int c = u / kRowChunks, q = u % kRowChunks;
    unsigned char* dst = static_cast<unsigned char*>(a.vt) +
                         ((static_cast<int64_t>(hk) * D + c) * a.total_kp + key0) * kVBytes + q * 16;
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(s_vt + (c * kBlockN) * kVBytes + q * 16);
  }
}

template <int D, bool kFp8>
__global__ void __launch_bounds__(kThreads) quantQKernel(const QuantArgs a) {
  constexpr int kPer = D / 32;  // channels per lane
  const int lane = threadIdx.x & 31;
  const int64_t w = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (w >= static_cast<int64_t>(a.total_q) * a.heads_q) return;  // uniform per warp
  const int t = static_cast<int>(w / a.heads_q);
  const int h = static_cast<int>(w - static_cast<int64_t>(t) * a.heads_q);
  const int b = seqOf(a.q_start, a.batch, t);
  const int i = t - __ldg(a.q_start + b);
  const int hk = h / a.group;
  const bool bf16 = a.in_bf16 != 0;
  const int64_t base = (a.varlen ? static_cast<int64_t>(__ldg(a.q_start + b)) * a.q_row_stride : b * a.q_batch_stride) +
                       static_cast<int64_t>(i) * a.q_row_stride + static_cast<int64_t>(h) * a.q_head_stride;
  const float* mean = a.k_mean + (static_cast<int64_t>(b) * a.heads_kv + hk) * D;
  float x[kPer];
  float amax = 0.0f, dot = 0.0f;
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const int c = lane * kPer + e;
    x[e] = loadElem(a.q, base + c, bf16);
    amax = fmaxf(amax, fabsf(x[e]));
    dot = fmaf(x[e], mean[c], dot);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    dot += __shfl_xor_sync(0xffffffffu, dot, o);
  }
  constexpr float kTarget = kFp8 ? kFp8Max : kInt8Max;
  const float inv = amax > 0.0f ? __fdiv_rn(kTarget, amax) : 0.0f;
  uint32_t packed = 0;
#pragma unroll
  for (int e = 0; e < kPer; ++e) packed |= quantCode<kFp8>(x[e], inv) << (8 * e);
  const int64_t row = static_cast<int64_t>(h) * a.total_q + t;
  int8_t* dst = a.q8 + row * D + lane * kPer;
  if constexpr (kPer == 4) {
    *reinterpret_cast<uint32_t*>(dst) = packed;
  } else {
    *reinterpret_cast<uint16_t*>(dst) = static_cast<uint16_t>(packed);
  }
  if (lane == 0) {
    a.q_scale[row] = __fdiv_rn(amax, kTarget);
    a.q_mean[row] = a.scale * dot;
  }
}

template <int D>
void launchPrepForDim(const QuantArgs& a, QuantMode mode, cudaStream_t stream) {
  const int blocks = a.total_kp / kBlockN;
  if (blocks > 0) {
    statsKernel<<<dim3(blocks, a.heads_kv), kThreads, 0, stream>>>(a);
    ATTN_CUDA_CHECK_LAUNCH();
  }
  finalizeKernel<<<dim3(a.batch, a.heads_kv), kThreads, 0, stream>>>(a);
  ATTN_CUDA_CHECK_LAUNCH();
  if (blocks > 0) {
    if (mode == QuantMode::Fp8) {
      quantKvKernel<D, true, true><<<dim3(blocks, a.heads_kv), kThreads, 0, stream>>>(a);
    } else if (mode == QuantMode::Int8Fp8) {
      quantKvKernel<D, true, false><<<dim3(blocks, a.heads_kv), kThreads, 0, stream>>>(a);
    } else {
      quantKvKernel<D, false, false><<<dim3(blocks, a.heads_kv), kThreads, 0, stream>>>(a);
    }
    ATTN_CUDA_CHECK_LAUNCH();
  }
  const int64_t warps = static_cast<int64_t>(a.total_q) * a.heads_q;
  if (warps > 0) {
    const unsigned grid = static_cast<unsigned>((warps + kWarps - 1) / kWarps);
    if (quantQkFp8(mode)) {
      quantQKernel<D, true><<<grid, kThreads, 0, stream>>>(a);
    } else {
      quantQKernel<D, false><<<grid, kThreads, 0, stream>>>(a);
    }
    ATTN_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void launchQuantPrep(const QuantArgs& a, QuantMode mode, cudaStream_t stream) {
  if (a.head_dim == 64) {
    launchPrepForDim<64>(a, mode, stream);
  } else {
    launchPrepForDim<128>(a, mode, stream);
  }
}

}  // namespace attn::cuda::quant
