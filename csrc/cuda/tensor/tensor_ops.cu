#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../../common/counter_rng.h"
#include "../../common/dtype.h"
#include "../check.h"
#include "../common/elem_convert.cuh"
#include "tensor_ops.h"

namespace attn::cuda {
namespace {

template <typename T>
__global__ void copyStridedKernel(StridedCopyParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.numel; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, src = 0, dst = 0;
    for (int d = p.ndim - 1; d >= 0; --d) {
      int64_t idx = rem % p.shape[d];
      rem /= p.shape[d];
      src += idx * p.src_strides[d];
      dst += idx * p.dst_strides[d];
    }
    static_cast<T*>(p.dst)[dst] = static_cast<const T*>(p.src)[src];
  }
}

template <typename T>
__global__ void fillKernel(T* dst, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) dst[i] = value;
}


template <typename T>
__global__ void randomNormalKernel(RandomParams p) {
  T* dst = static_cast<T*>(p.dst);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.numel; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = fromFloat<T>(p.mean + p.std * counterNormal(p.seed, i));
}

unsigned gridFor(int64_t n) {
  int64_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks < 1 ? 1 : blocks) : 65535 * 8);
}

}  // namespace

void copyStrided(const StridedCopyParams& p, cudaStream_t stream) {
  if (p.numel == 0) return;
  switch (p.elem_size) {
    case 1: copyStridedKernel<uint8_t><<<gridFor(p.numel), 256, 0, stream>>>(p); break;
    case 2: copyStridedKernel<uint16_t><<<gridFor(p.numel), 256, 0, stream>>>(p); break;
    case 4: copyStridedKernel<uint32_t><<<gridFor(p.numel), 256, 0, stream>>>(p); break;
    default: throwRange("copyStrided: element size " + std::to_string(p.elem_size));
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

void fill(const FillParams& p, cudaStream_t stream) {
  if (p.numel == 0) return;
  switch (p.elem_size) {
    case 1: fillKernel<<<gridFor(p.numel), 256, 0, stream>>>(static_cast<uint8_t*>(p.dst), p.numel, uint8_t(p.bits)); break;
    case 2: fillKernel<<<gridFor(p.numel), 256, 0, stream>>>(static_cast<uint16_t*>(p.dst), p.numel, uint16_t(p.bits)); break;
    case 4: fillKernel<<<gridFor(p.numel), 256, 0, stream>>>(static_cast<uint32_t*>(p.dst), p.numel, p.bits); break;
    default: throwRange("fill: element size " + std::to_string(p.elem_size));
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

void randomNormal(const RandomParams& p, cudaStream_t stream) {
  if (p.numel == 0) return;
  switch (static_cast<DType>(p.dtype)) {
    case DType::F32: randomNormalKernel<float><<<gridFor(p.numel), 256, 0, stream>>>(p); break;
    case DType::F16: randomNormalKernel<__half><<<gridFor(p.numel), 256, 0, stream>>>(p); break;
    case DType::BF16: randomNormalKernel<__nv_bfloat16><<<gridFor(p.numel), 256, 0, stream>>>(p); break;
    default: throwRange("randomNormal: dtype must be f32, f16 or bf16");
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda
