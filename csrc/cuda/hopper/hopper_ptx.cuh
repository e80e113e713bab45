// Inline-PTX wrappers for the Hopper (sm_90a) instructions of the forward: mbarriers, bulk tensor
// copies (TMA), wgmma fences and shared-memory matrix descriptors, register reallocation.
// Everything here compiles to nothing outside the sm_90a pass (the callers are guarded the same way).
#pragma once
#include <cuda.h>  // CUtensorMap (a plain 128-byte struct; no driver library is linked for it)

#include <cstdint>

namespace attn::cuda::hopper {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// ---- mbarrier ------------------------------------------------------------------------------

__device__ __forceinline__ void mbarInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

// Makes the initialized barriers visible to the async proxy (the TMA unit) before first use.
__device__ __forceinline__ void fenceBarrierInit() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }

// A K/V stage ring's mbarriers: four arrays of kStages 8-byte barriers from `base` (full K, full V,
// empty K, empty V). Full barriers complete on the producer's arrival plus the TMA bytes, empty
// ones on one arrival per consumer warp.
template <int kStages>
struct KvRing {
  uint32_t base;
  __device__ __forceinline__ uint32_t fullK(int s) const { return base + 8 * s; }
  __device__ __forceinline__ uint32_t fullV(int s) const { return base + 8 * (kStages + s); }
  __device__ __forceinline__ uint32_t emptyK(int s) const { return base + 8 * (2 * kStages + s); }
  __device__ __forceinline__ uint32_t emptyV(int s) const { return base + 8 * (3 * kStages + s); }
  // One thread, before the fenceBarrierInit and the CTA barrier that publish them.
  __device__ __forceinline__ void init(uint32_t consumer_warps) const {
    for (int s = 0; s < kStages; ++s) {
      mbarInit(fullK(s), 1);
      mbarInit(fullV(s), 1);
      mbarInit(emptyK(s), consumer_warps);
      mbarInit(emptyV(s), consumer_warps);
    }
  }
};

// Arrives once and announces `bytes` of TMA traffic the current phase must still receive.
__device__ __forceinline__ void mbarArriveExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbarArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// Blocks until the phase with the given parity has completed.
__device__ __forceinline__ void mbarWait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// Orders this thread's generic-proxy shared-memory writes (st.shared, cp.async) before later
// async-proxy reads of them (wgmma operands, TMA stores); a barrier then publishes them to the CTA.
__device__ __forceinline__ void fenceProxyAsync() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// ---- TMA -----------------------------------------------------------------------------------

// Copies one box of a 4-D tensor map (coordinates innermost first) into shared memory; the bytes
// are counted on `bar`.
__device__ __forceinline__ void tmaLoad4d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1, int c2,
                                          int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], "
      "[%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

__device__ __forceinline__ void tmaLoad3d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
      "[%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

// A plain (non-tensor) bulk copy of `bytes` contiguous bytes, counted on `bar`: both addresses and
// `bytes` are multiples of 16.
__device__ __forceinline__ void bulkLoad(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
               "l"(reinterpret_cast<uint64_t>(src)), "r"(bytes), "r"(bar)
               : "memory");
}

__device__ __forceinline__ void prefetchTensorMap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// ---- warpgroup MMA bookkeeping ---------------------------------------------------------------

__device__ __forceinline__ void wgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Pins accumulator registers in place around asynchronous wgmma: the compiler must not move reads
// or writes of them across the issue / wait points.
template <int N>
__device__ __forceinline__ void fenceRegs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
template <int N>
__device__ __forceinline__ void fenceRegs(int32_t (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

// Shared-memory matrix descriptor for a 128-byte-swizzled operand (layout type 1). The tile is
// stored as TMA writes it with CU_TENSOR_MAP_SWIZZLE_128B: 64-element (128-byte) column chunks,
// rows of 128 bytes, 8-row swizzle atoms of 1024 bytes (chunk bases 1024-byte aligned).
//   K-major (Q, K):  lbo unused (1), sbo = 1024 (next 8 rows); start moves 32 bytes per k16 step.
//   MN-major (V):    lbo = bytes between 64-column chunks along N, sbo = 1024 (next 8 k rows).
__device__ __forceinline__ uint64_t smemDesc(uint32_t addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  uint64_t d = static_cast<uint64_t>((addr & 0x3FFFF) >> 4);
  d |= static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFF) << 16;
  d |= static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFF) << 32;
  d |= static_cast<uint64_t>(1) << 62;
  return d;
}

// A descriptor base the compiler cannot see through, for a loop of wgmmas that step through one
// operand as base + immediate (descStep). Visible, each step's descriptor is rebuilt from its address
// (mask, shift, or, moves to uniform registers: ~10 instructions in front of every wgmma, docs/perf.md
// run 32) or every step's descriptor is hoisted into registers.
__device__ __forceinline__ uint64_t opaqueDesc(uint64_t d) {
  asm volatile("" : "+l"(d));
  return d;
}

// Descriptor d moved `bytes` (a multiple of 16) on in shared memory: the start-address field holds
// address / 16 in bits 0-13, and shared addresses stay below 256 KB, so the add never carries out.
__device__ __forceinline__ uint64_t descStep(uint64_t d, uint32_t bytes) { return d + (bytes >> 4); }

// K-major operand with rows of kSwizzle (64 or 128) bytes, as TMA writes a box of that inner width
// with the same swizzle: 8-row atoms of 8 * kSwizzle bytes (bases aligned to them), sbo = one atom,
// lbo unused (1); start moves 32 bytes per k step (k32 of 8-bit, k16 of 16-bit elements) inside
// a row. Layout type: 1 = 128-byte swizzle, 2 = 64-byte swizzle.
template <int kSwizzle>
__device__ __forceinline__ uint64_t smemDescK(uint32_t addr) {
  static_assert(kSwizzle == 64 || kSwizzle == 128, "64- or 128-byte swizzle");
  uint64_t d = static_cast<uint64_t>((addr & 0x3FFFF) >> 4);
  d |= static_cast<uint64_t>(1) << 16;
  d |= static_cast<uint64_t>((8 * kSwizzle) >> 4) << 32;
  d |= static_cast<uint64_t>(kSwizzle == 128 ? 1 : 2) << 62;
  return d;
}

// ---- register reallocation and named barriers ----------------------------------------------

template <int kRegs>
__device__ __forceinline__ void setMaxRegsInc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void setMaxRegsDec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

// Barrier over `threads` threads (a multiple of 32) under hardware barrier id `id` (1..15; 0 is
// __syncthreads).
__device__ __forceinline__ void namedBarrierSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Arrives at barrier `id` without waiting (the producer side of a named-barrier handshake).
__device__ __forceinline__ void namedBarrierArrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace attn::cuda::hopper
