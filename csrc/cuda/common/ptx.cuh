// Thin inline-PTX wrappers for the sm_80+ instructions the kernels are built from (dense forward
// and paged decode alike): tensor-core MMA, ldmatrix, cp.async, packed stores and a few fast math
// ops. Nothing here knows about tiles.
//
// Every asm that touches shared memory is `volatile`: the compiler must not hoist an ldmatrix out
// of the main loop (V is read from the same address every iteration while its contents change),
// and cp.async / barriers must keep their program order.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace attn::cuda {

__device__ __forceinline__ uint32_t smemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---- element type traits -------------------------------------------------------------------

template <typename Elem>
struct ElemTraits;

template <>
struct ElemTraits<__half> {
  // Two floats -> one register of two f16 (low half = first), as mma fragments expect.
  __device__ static __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};

template <>
struct ElemTraits<__nv_bfloat16> {
  __device__ static __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};

// ---- tensor core ---------------------------------------------------------------------------

// D = A * B + D for one m16n8k16 tile, f32 accumulate.
// A: 4 regs (row-major 16x16), B: 2 regs ("col", i.e. 16x8 stored n-major), C/D: 4 floats.
template <typename Elem>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---- shared memory -> registers ------------------------------------------------------------

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, register i receives
// matrix i in mma fragment order.
__device__ __forceinline__ void ldmatrixX4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Same, transposed: used for V so that a row-major [key][dim] tile becomes the k-major B operand.
__device__ __forceinline__ void ldmatrixX4Trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Transposes an 8x8 b16 matrix held one row pair per lane (lane (g, t4) holds M[g][2 t4 .. 2 t4 + 1])
// into the same layout of M^T: a score accumulator becomes an mma operand without shared memory.
__device__ __forceinline__ uint32_t movmatrixTrans(uint32_t x) {
  uint32_t y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
  return y;
}

// ---- global -> shared (asynchronous) -------------------------------------------------------

// 16-byte copy that bypasses L1 (.cg: K/V tiles are reused through L2 by other CTAs, not L1).
// src_bytes = 0 writes 16 zero bytes without reading src: this is how out-of-range rows are
// zero-filled, so no garbage (possibly NaN) ever reaches the MMAs. src must still be a valid address.
__device__ __forceinline__ void cpAsync16(uint32_t smem_addr, const void* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;\n" ::"r"(smem_addr), "l"(src),
               "r"(src_bytes)
               : "memory");
}

__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// cp.async.wait_group with a run-time count (0..7; larger counts wait for everything).
__device__ __forceinline__ void cpAsyncWaitDyn(int n) {
  switch (n) {
    case 1: cpAsyncWait<1>(); break;
    case 2: cpAsyncWait<2>(); break;
    case 3: cpAsyncWait<3>(); break;
    case 4: cpAsyncWait<4>(); break;
    case 5: cpAsyncWait<5>(); break;
    case 6: cpAsyncWait<6>(); break;
    case 7: cpAsyncWait<7>(); break;
    case 8: cpAsyncWait<8>(); break;
    case 9: cpAsyncWait<9>(); break;
    case 10: cpAsyncWait<10>(); break;
    case 11: cpAsyncWait<11>(); break;
    case 12: cpAsyncWait<12>(); break;
    case 13: cpAsyncWait<13>(); break;
    case 14: cpAsyncWait<14>(); break;
    default: cpAsyncWait<0>(); break;
  }
}

// ---- programmatic dependent launch ---------------------------------------------------------

// Lets the grid's programmatic dependent (the split combine, ../paged/combine.cu, or the next
// decode on the stream) launch early; it still waits for this grid's completion and memory
// (waitForPrerequisites) before it reads what this grid writes. Before sm_90: nothing (the
// dependent launches when this grid ends).
__device__ __forceinline__ void launchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Waits until the grids this one depends on programmatically (launched with programmatic stream
// serialization) have completed and their memory is visible; call it before the first global read
// of anything an earlier kernel on the stream may write. Without such a launch: returns at once.
__device__ __forceinline__ void waitForPrerequisites() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// ---- packed global stores ------------------------------------------------------------------

// Stores 8 floats as 8 elements of Elem with one 16-byte store (dst 16-byte aligned).
template <typename Elem>
__device__ __forceinline__ void store8(Elem* dst, const float (&v)[8]) {
  uint4 u;
  u.x = ElemTraits<Elem>::pack(v[0], v[1]);
  u.y = ElemTraits<Elem>::pack(v[2], v[3]);
  u.z = ElemTraits<Elem>::pack(v[4], v[5]);
  u.w = ElemTraits<Elem>::pack(v[6], v[7]);
  *reinterpret_cast<uint4*>(dst) = u;
}

// Stores 4 floats as 4 elements of Elem with one 8-byte store (dst 8-byte aligned).
template <typename Elem>
__device__ __forceinline__ void store4(Elem* dst, float a, float b, float c, float d) {
  uint2 u;
  u.x = ElemTraits<Elem>::pack(a, b);
  u.y = ElemTraits<Elem>::pack(c, d);
  *reinterpret_cast<uint2*>(dst) = u;
}

// ---- shared memory plain accesses (epilogue) -----------------------------------------------

__device__ __forceinline__ void stShared32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}

__device__ __forceinline__ uint32_t ldShared32(uint32_t addr) {
  uint32_t v;
  asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(v) : "r"(addr) : "memory");
  return v;
}

__device__ __forceinline__ void stShared128(uint32_t addr, uint4 v) {
  asm volatile("st.shared.v4.b32 [%0], {%1,%2,%3,%4};\n" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}

__device__ __forceinline__ uint4 ldShared128(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "r"(addr)
               : "memory");
  return v;
}

// ---- math ----------------------------------------------------------------------------------

// 2^x on the SFU whatever the compiler flags are. ex2.approx(-inf) = +0, which the online
// softmax relies on for masked scores.
__device__ __forceinline__ float exp2Approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float rcpApprox(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// tanh with ~2e-7 relative error. tanhf itself becomes tanh.approx.f32 (~5e-4 relative error)
// under --use_fast_math, too coarse for softcap. Small |x|: odd minimax polynomial (relative
// error 1.2e-7 on [0, 0.625]); otherwise 1 - 2 / (e^{2|x|} + 1), which has no cancellation there.
__device__ __forceinline__ float tanhAccurate(float x) {
  const float ax = fminf(fabsf(x), 9.0f);  // tanh(9) rounds to 1.0f; keeps e^{2x} finite
  const float s = x * x;
  float p = -0.005705742631107569f;
  p = fmaf(p, s, 0.020639752969145775f);
  p = fmaf(p, s, -0.053739916533231735f);
  p = fmaf(p, s, 0.13331444561481476f);
  p = fmaf(p, s, -0.3333328068256378f);
  const float small = fmaf(x * s, p, x);
  const float e = exp2Approx(ax * 2.8853900817779268f);  // 2 * log2(e)
  const float large = copysignf(1.0f - 2.0f * rcpApprox(e + 1.0f), x);
  return ax < 0.625f ? small : large;
}

}  // namespace attn::cuda
