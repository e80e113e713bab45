// mlaAppend: one warp per new token writes its 576-wide row into its page. Lane l handles columns
// l + 32 k (coalesced loads and stores). fp8: the warp reduces amax over the latent and over the
// rope key, and stores e4m3(x * 448 / amax) with scale amax / 448 (round to nearest even,
// saturating; divisions in IEEE round-to-nearest as in csrc/cpu/mla_attention.cpp).
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <string>

#include "../../common/error.h"
#include "../check.h"
#include "../common/new_token.cuh"
#include "mla.h"
#include "mla_internal.h"

namespace attn::cuda {
namespace {

constexpr int kAppendWarps = 8;

struct AppendArgs {
  const __nv_bfloat16* latent;
  int64_t latent_row_stride;
  const __nv_bfloat16* rope;  // null: columns 512.. of latent
  int64_t rope_row_stride;
  void* pages;
  float* scales;
  const int32_t* block_table;
  int64_t block_table_stride;
  const int32_t* block_table_rows;
  const int32_t* cu_new;
  const int32_t* start_pos;
  int batch, total_new, page_shift;
};

__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <bool kFp8>
__global__ void __launch_bounds__(kAppendWarps * 32) mlaAppendKernel(const AppendArgs a) {
  const int lane = threadIdx.x & 31;
  const int r = blockIdx.x * kAppendWarps + (threadIdx.x >> 5);
  if (r >= a.total_new) return;  // uniform over the warp
  const auto [b, pos] = newTokenOf(a, r);
  if (pos < 0) return;
  const int64_t trow = a.block_table_rows != nullptr ? __ldg(a.block_table_rows + b) : b;
  const int64_t page = __ldg(a.block_table + trow * a.block_table_stride + (pos >> a.page_shift));
  if (page < 0) return;
  const int64_t dst = (page << a.page_shift) + (pos & ((1 << a.page_shift) - 1));

  const __nv_bfloat16* lat = a.latent + r * a.latent_row_stride;
  const __nv_bfloat16* rope = a.rope != nullptr ? a.rope + r * a.rope_row_stride : lat + kMlaLatent;
  float x[kMlaLatent / 32], y[kMlaRope / 32];
#pragma unroll
  for (int k = 0; k < kMlaLatent / 32; ++k) x[k] = __bfloat162float(lat[k * 32 + lane]);
#pragma unroll
  for (int k = 0; k < kMlaRope / 32; ++k) y[k] = __bfloat162float(rope[k * 32 + lane]);

  if constexpr (!kFp8) {
    __nv_bfloat16* out = static_cast<__nv_bfloat16*>(a.pages) + dst * kMlaRow;
#pragma unroll
    for (int k = 0; k < kMlaLatent / 32; ++k) out[k * 32 + lane] = __float2bfloat16_rn(x[k]);
#pragma unroll
    for (int k = 0; k < kMlaRope / 32; ++k) out[kMlaLatent + k * 32 + lane] = __float2bfloat16_rn(y[k]);
  } else {
    float ax = 0.0f, ay = 0.0f;
#pragma unroll
    for (int k = 0; k < kMlaLatent / 32; ++k) ax = fmaxf(ax, fabsf(x[k]));
#pragma unroll
    for (int k = 0; k < kMlaRope / 32; ++k) ay = fmaxf(ay, fabsf(y[k]));
    ax = warpMax(ax);
    ay = warpMax(ay);
    const float ix = ax > 0.0f ? __fdiv_rn(kFp8E4m3Max, ax) : 0.0f;
    const float iy = ay > 0.0f ? __fdiv_rn(kFp8E4m3Max, ay) : 0.0f;
    uint8_t* out = static_cast<uint8_t*>(a.pages) + dst * kMlaRow;
#pragma unroll
    for (int k = 0; k < kMlaLatent / 32; ++k) out[k * 32 + lane] = __nv_cvt_float_to_fp8(__fmul_rn(x[k], ix), __NV_SATFINITE, __NV_E4M3);
#pragma unroll
    for (int k = 0; k < kMlaRope / 32; ++k)
      out[kMlaLatent + k * 32 + lane] = __nv_cvt_float_to_fp8(__fmul_rn(y[k], iy), __NV_SATFINITE, __NV_E4M3);
    if (lane == 0) {
      a.scales[dst * 2] = __fdiv_rn(ax, kFp8E4m3Max);
      a.scales[dst * 2 + 1] = __fdiv_rn(ay, kFp8E4m3Max);
    }
  }
}

}  // namespace

void mlaAppend(const MlaAppendParams& p, cudaStream_t stream) {
  if (p.total_new < 0 || p.batch < 0) throwRange("mlaAppend: total_new and batch must not be negative");
  if (p.total_new == 0 || p.batch == 0) return;
  if (p.in_dtype != DType::BF16) throwRange(std::string("mlaAppend on CUDA: latents must be bf16, got ") + dtypeName(p.in_dtype));
  const bool fp8 = p.cache.dtype == DType::FP8E4M3;
  if (!fp8 && p.cache.dtype != DType::BF16) throwRange(std::string("mlaAppend on CUDA: unsupported cache dtype ") + dtypeName(p.cache.dtype));
  if (!p.latent || !p.cache.pages || !p.cache.block_table || !p.cu_new || !p.start_pos || (fp8 && !p.cache.scales))
    throwRange("mlaAppend: a required pointer is null");
  const int ps = p.cache.page_size;
  if (ps <= 0 || (ps & (ps - 1)) != 0) throwRange("mlaAppend: page_size must be a power of two");
  AppendArgs a{};
  a.latent = static_cast<const __nv_bfloat16*>(p.latent);
  a.latent_row_stride = p.latent_row_stride;
  a.rope = static_cast<const __nv_bfloat16*>(p.rope);
  a.rope_row_stride = p.rope_row_stride;
  mla::setCacheArgs(a, p.cache);
  a.cu_new = p.cu_new;
  a.start_pos = p.start_pos;
  a.batch = p.batch;
  a.total_new = p.total_new;
  const dim3 grid(static_cast<unsigned>((p.total_new + kAppendWarps - 1) / kAppendWarps));
  if (fp8) mlaAppendKernel<true><<<grid, kAppendWarps * 32, 0, stream>>>(a);
  else mlaAppendKernel<false><<<grid, kAppendWarps * 32, 0, stream>>>(a);
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda
