// e4m3 (the FP8 caches' storage) -> wider types. Every e4m3 value is exactly an f16, a bf16 and an
// f32, so these conversions are exact.
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace attn::cuda {

// Two e4m3 in the low 16 bits of `two` (low byte first) -> f16x2 bits (low half first).
__device__ __forceinline__ uint32_t e4m3x2ToHalf2Bits(uint32_t two) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(two & 0xffffu), __NV_E4M3);
  return static_cast<uint32_t>(h.x) | (static_cast<uint32_t>(h.y) << 16);
}

// Two e4m3 in the low 16 bits of `two` (low byte first) -> (low, high) as floats.
__device__ __forceinline__ float2 e4m3x2ToFloat2(uint32_t two) {
  const uint32_t bits = e4m3x2ToHalf2Bits(two);
  return __half22float2(*reinterpret_cast<const __half2*>(&bits));
}

}  // namespace attn::cuda
