// pagedAppend into a quantized cache (fp8 e4m3 / int8 pages with one f32 scale per token and kv
// head; rules in csrc/common/quant.h). One CTA per new-token row: it finds the row's page like
// append.cu, then each warp takes (K or V, head) pairs: the lanes load the row (f32/f16/bf16),
// subtract the smoothing vector (K), reduce |x| to the scale, and write the 8-bit row and scale.
// init_smoothing first runs smoothMeanKernel: one CTA per kv head sets the K mean and the K and V
// channel scales from the call's new rows, with the CPU's arithmetic (double sum, sequential).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <string>

#include "../../common/error.h"
#include "../../common/quant.h"
#include "../check.h"
#include "../common/new_token.cuh"
#include "paged_attention.h"
#include "paged_internal.h"

namespace attn::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxPerLane = 8;  // head_dim <= 256

__device__ __forceinline__ float loadIn(const void* base, int64_t i, int dtype) {
  if (dtype == static_cast<int>(DType::F32)) return __ldg(static_cast<const float*>(base) + i);
  const uint16_t bits = __ldg(static_cast<const uint16_t*>(base) + i);
  return dtype == static_cast<int>(DType::BF16) ? __bfloat162float(__ushort_as_bfloat16(bits)) : __half2float(__ushort_as_half(bits));
}

__global__ void __launch_bounds__(kThreads) smoothMeanKernel(const PagedAppendParams p) {
  const int h = blockIdx.x;
  const int dtype = static_cast<int>(p.dtype);
  for (int c = threadIdx.x; c < p.head_dim; c += kThreads) {
    const int64_t k0 = static_cast<int64_t>(h) * p.k_head_stride + c, v0 = static_cast<int64_t>(h) * p.v_head_stride + c;
    double sum = 0.0;
    for (int r = 0; r < p.total_new; ++r) sum += loadIn(p.k, r * p.k_row_stride + k0, dtype);
    const float mean = static_cast<float>(sum / static_cast<double>(p.total_new));
    float kmax = 0.0f, vmax = 0.0f;
    for (int r = 0; r < p.total_new; ++r) {
      kmax = fmaxf(kmax, fabsf(__fsub_rn(loadIn(p.k, r * p.k_row_stride + k0, dtype), mean)));
      vmax = fmaxf(vmax, fabsf(loadIn(p.v, r * p.v_row_stride + v0, dtype)));
    }
    p.k_smooth[h * p.head_dim + c] = mean;
    p.k_chan[h * p.head_dim + c] = channelScale(p.cache_dtype, kmax);
    p.v_chan[h * p.head_dim + c] = channelScale(p.cache_dtype, vmax);
  }
}

__global__ void __launch_bounds__(kThreads) appendQuantKernel(const PagedAppendParams p) {
  const int r = blockIdx.x;
  const auto [b, pos] = newTokenOf(p, r);
  if (pos < 0) return;
  const int64_t row = p.block_table_rows != nullptr ? __ldg(p.block_table_rows + b) : b;
  const int64_t page = __ldg(p.block_table + row * p.block_table_stride + pos / p.page_size);
  if (page < 0) return;
  const int64_t slot = pos % p.page_size;
  const bool fp8 = p.cache_dtype == DType::FP8E4M3;
  const float target = fp8 ? kFp8Max : kInt8Max;
  const int dtype = static_cast<int>(p.dtype);
  const int lane = threadIdx.x & 31;
  for (int u = threadIdx.x >> 5; u < 2 * p.heads_kv; u += kThreads / 32) {
    const bool is_v = u >= p.heads_kv;
    const int h = is_v ? u - p.heads_kv : u;
    const void* src = is_v ? p.v : p.k;
    const int64_t src0 = static_cast<int64_t>(r) * (is_v ? p.v_row_stride : p.k_row_stride) +
                         static_cast<int64_t>(h) * (is_v ? p.v_head_stride : p.k_head_stride);
    float x[kMaxPerLane];
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int c = lane + 32 * i;
      x[i] = 0.0f;
      if (c < p.head_dim) {
        x[i] = loadIn(src, src0 + c, dtype);
        if (!is_v) x[i] = __fsub_rn(x[i], p.k_smooth[h * p.head_dim + c]);
        x[i] = __fdiv_rn(x[i], (is_v ? p.v_chan : p.k_chan)[h * p.head_dim + c]);
        amax = fmaxf(amax, fabsf(x[i]));
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float inv = amax > 0.0f ? __fdiv_rn(target, amax) : 0.0f;
    unsigned char* dst = static_cast<unsigned char*>(is_v ? p.v_pages : p.k_pages) + page * p.page_stride +
                         static_cast<int64_t>(h) * p.page_head_stride + slot * p.head_dim;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int c = lane + 32 * i;
      if (c < p.head_dim) {
        const float y = __fmul_rn(x[i], inv);
        dst[c] = fp8 ? static_cast<unsigned char>(__nv_cvt_float_to_fp8(y, __NV_SATFINITE, __NV_E4M3))
                     : static_cast<unsigned char>(max(-127, min(127, __float2int_rn(y))));
      }
    }
    if (lane == 0) {
      float* scales = is_v ? p.v_scales : p.k_scales;
      scales[page * p.scale_page_stride + static_cast<int64_t>(h) * p.scale_head_stride + slot] = __fdiv_rn(amax, target);
    }
  }
}

}  // namespace

void pagedAppendQuant(const PagedAppendParams& p, cudaStream_t stream) {
  if (p.dtype != DType::F32 && p.dtype != DType::F16 && p.dtype != DType::BF16)
    throwRange(std::string("pagedAppend: unsupported input dtype ") + dtypeName(p.dtype) + " (f32, f16 or bf16)");
  if (p.head_dim > 32 * kMaxPerLane) throwRange("pagedAppend: a quantized cache supports head_dim up to 256");
  if (!p.k_scales || !p.v_scales || !p.k_smooth || !p.k_chan || !p.v_chan)
    throwRange("pagedAppend: a quantized cache needs scales, k_smooth, k_chan and v_chan");
  if (p.total_new <= 0 || p.batch <= 0) return;
  if (p.init_smoothing) {
    smoothMeanKernel<<<p.heads_kv, kThreads, 0, stream>>>(p);
    ATTN_CUDA_CHECK_LAUNCH();
  }
  appendQuantKernel<<<p.total_new, kThreads, 0, stream>>>(p);
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda
