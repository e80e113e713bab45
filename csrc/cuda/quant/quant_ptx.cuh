// Inline-PTX wrappers for the 8-bit tensor-core paths of the quantized forward: INT8 and FP8 e4m3
// mma.sync m16n8k32 and the f32 -> e4m3x2 conversion. The FP8 instructions exist from sm_89 on;
// compiled for an older target they trap (the host never launches the FP8 kernel there, see
// quantForwardSupported).
#pragma once
#include <cstdint>

namespace attn::cuda::quant {

// D = A * B + D, A: 16x32 s8 (4 regs), B: 32x8 s8 (2 regs, k-major), D: s32. Exact.
__device__ __forceinline__ void mmaS8(int32_t (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// D = A * B + C for e4m3 operands with an f32 accumulator (sm_89+). The hardware keeps fewer
// accumulator bits than f32 (SageAttention2 measured ~22), so callers accumulate one key tile
// here and add it to their f32 accumulator themselves (two-level accumulation).
__device__ __forceinline__ void mmaE4m3(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();
#endif
}

// Four floats -> four e4m3 bytes (x0 in the lowest byte), round to nearest even, saturating.
__device__ __forceinline__ uint32_t packE4m3x4(float x0, float x1, float x2, float x3) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  uint16_t lo, hi;
  // cvt puts its first source in the upper byte.
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(lo) : "f"(x1), "f"(x0));
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(hi) : "f"(x3), "f"(x2));
  return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
#else
  __trap();
  return 0;
#endif
}

}  // namespace attn::cuda::quant
