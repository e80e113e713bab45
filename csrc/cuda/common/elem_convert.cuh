// float <-> storage element conversions (f32, f16, bf16; round to nearest even) for kernels
// templated on the element type.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace attn::cuda {

__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float toFloat(__nv_bfloat16 x) { return __bfloat162float(x); }

// A 16-bit element (f16 or bf16) held as its raw bits.
template <typename T>
__device__ __forceinline__ float bitsToFloat(unsigned short bits) {
  if constexpr (std::is_same_v<T, __half>) {
    return __half2float(__ushort_as_half(bits));
  } else {
    static_assert(std::is_same_v<T, __nv_bfloat16>, "bitsToFloat takes f16 or bf16");
    return __bfloat162float(__ushort_as_bfloat16(bits));
  }
}

template <typename T>
__device__ __forceinline__ T fromFloat(float x);
template <>
__device__ __forceinline__ float fromFloat<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half fromFloat<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

}  // namespace attn::cuda
