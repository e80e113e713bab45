// Split-KV combine: o[row, h] = sum_s exp(lse_s - lse) * O_s[row, h], lse = log(sum_s exp(lse_s)),
// where O_s are the splits' normalized partial outputs. One warp per (row, head): the lanes read
// the splits' lse in parallel (32 at a time), turn them into weights, and every lane then sums its
// channels over those splits with 8 loads in flight. Splits with lse_s = -inf (no visible key)
// weigh 0 and are never read; a row with no visible key at all gets o = 0 and lse = -inf.
// On sm_90 the kernel is launched as a programmatic dependent of the decode kernel (PDL), so its
// launch overlaps the decode's tail; griddepcontrol.wait orders it after the decode's writes.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../../common/error.h"
#include "../check.h"
#include "../common/ptx.cuh"
#include "paged_internal.h"

namespace attn::cuda::paged {
namespace {

constexpr int kCombineWarps = 4;
constexpr int kCombineBatch = 8;  // partial-output loads in flight per lane

template <typename T>
__global__ void __launch_bounds__(kCombineWarps * 32) pagedCombineKernel(const DecodeArgs a) {
  waitForPrerequisites();
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  const int lane = threadIdx.x & 31;
  const int64_t pairs = static_cast<int64_t>(a.total_q) * a.heads_q;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kCombineWarps + (threadIdx.x >> 5);
  if (idx >= pairs) return;  // uniform over the warp
  const int row = static_cast<int>(idx / a.heads_q);
  const int h = static_cast<int>(idx - static_cast<int64_t>(row) * a.heads_q);
  const int S = a.num_splits;
  const int D = a.head_dim;
  const float* lse_s = a.ws_lse + idx;  // split s at lse_s[s * pairs]
  const float* o_s = a.ws_o + idx * D;  // split s at o_s[s * pairs * D]

  float mx = kNegInf;
  for (int s = lane; s < S; s += 32) mx = fmaxf(mx, lse_s[s * pairs]);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));

  T* out = static_cast<T*>(a.o) + static_cast<int64_t>(row) * a.o_row_stride + static_cast<int64_t>(h) * a.o_head_stride;
  if (mx == kNegInf) {
    for (int u = lane; u < D / 4; u += 32) store4<T>(out + u * 4, 0.0f, 0.0f, 0.0f, 0.0f);
    if (lane == 0 && a.lse) a.lse[idx] = kNegInf;
    return;
  }
  float sum = 0.0f;
  for (int s = lane; s < S; s += 32) {
    const float l = lse_s[s * pairs];
    if (l != kNegInf) sum += __expf(l - mx);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float lse = mx + __logf(sum);

  // Lane u handles channels [4u, 4u + 4) (and 4u + 128.. for head_dim 256).
  for (int u0 = 0; u0 < D / 4; u0 += 32) {
    const int u = u0 + lane;
    const bool active = u < D / 4;
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int base = 0; base < S; base += 32) {
      const int n = min(32, S - base);
      float w = 0.0f;
      if (lane < n) {
        const float l = lse_s[static_cast<int64_t>(base + lane) * pairs];
        w = l == kNegInf ? 0.0f : __expf(l - lse);
      }
      for (int j0 = 0; j0 < n; j0 += kCombineBatch) {
        float4 x[kCombineBatch];
        float wj[kCombineBatch];
#pragma unroll
        for (int k = 0; k < kCombineBatch; ++k) {
          wj[k] = __shfl_sync(0xffffffffu, w, (j0 + k) & 31);
          x[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
          if (active && j0 + k < n && wj[k] != 0.0f)
            x[k] = *reinterpret_cast<const float4*>(o_s + static_cast<int64_t>(base + j0 + k) * pairs * D + u * 4);
        }
#pragma unroll
        for (int k = 0; k < kCombineBatch; ++k) {
          if (j0 + k < n && wj[k] != 0.0f) {
            acc.x += wj[k] * x[k].x;
            acc.y += wj[k] * x[k].y;
            acc.z += wj[k] * x[k].z;
            acc.w += wj[k] * x[k].w;
          }
        }
      }
    }
    if (active) store4<T>(out + u * 4, acc.x, acc.y, acc.z, acc.w);
  }
  if (lane == 0 && a.lse) a.lse[idx] = lse;
}

template <typename T>
void launchTyped(const DecodeArgs& a, unsigned blocks, bool pdl, cudaStream_t stream) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(kCombineWarps * 32);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  ATTN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, pagedCombineKernel<T>, a));
}

}  // namespace

void launchCombine(DType dtype, const DecodeArgs& a, cudaStream_t stream) {
  const int64_t pairs = static_cast<int64_t>(a.total_q) * a.heads_q;
  if (pairs == 0) return;
  const int64_t blocks = (pairs + kCombineWarps - 1) / kCombineWarps;
  if (blocks > 0x7fffffff) throwRange("pagedAttention: too many (row, head) pairs for the combine grid");
  int device = 0, major = 0;
  ATTN_CUDA_CHECK(cudaGetDevice(&device));
  ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  const bool pdl = major >= 9;
  switch (dtype) {
    case DType::F16: launchTyped<__half>(a, static_cast<unsigned>(blocks), pdl, stream); break;
    case DType::BF16: launchTyped<__nv_bfloat16>(a, static_cast<unsigned>(blocks), pdl, stream); break;
    default: throwRange(std::string("pagedAttention: unsupported dtype ") + dtypeName(dtype));
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda::paged
