// Output tiles of the Hopper forward kernels (flash_fwd_sm90.cuh, flash_fwd_sm90_quant.cuh): each
// consumer warpgroup stages its 64 rows of O in shared memory in the 128-byte-swizzled layout TMA
// loads Q with (64-column chunks of 128-byte rows), then stores them as 16-byte row pieces.
#pragma once
#include <cstdint>

#include "../common/ptx.cuh"

namespace attn::cuda::hopper {

// Shared-memory byte address of the 4 bytes (columns 8 dt + 2 t, + 1) of tile row r.
template <int kBlockM>
__device__ __forceinline__ uint32_t stagedO(uint32_t base, int r, int dt, int t) {
  const int chunk = dt / 8, unit = dt % 8;
  return base + chunk * kBlockM * 128 + r * 128 + ((unit ^ (r & 7)) * 16) + 4 * t;
}

// Copies warpgroup cw's staged rows [64 cw, 64 cw + 64) of the tile at base to global rows m0 + r
// (those below rows_valid) of og (row stride in elements of 2 bytes). ctid: thread in the warpgroup.
template <int kHeadDim, int kBlockM>
__device__ __forceinline__ void storeStagedRows(uint32_t base, uint16_t* og, int64_t row_stride, int cw, int ctid, int m0,
                                                int rows_valid) {
  constexpr int kUnits = kHeadDim / 8;  // 16-byte units per row
#pragma unroll
  for (int i = 0; i < 64 * kUnits / 128; ++i) {
    const int idx = ctid + 128 * i;
    const int r = cw * 64 + idx / kUnits;
    const int u = idx % kUnits;
    if (m0 + r < rows_valid) {
      const uint4 v = ldShared128(base + (u / 8) * kBlockM * 128 + r * 128 + (((u % 8) ^ (r & 7)) * 16));
      *reinterpret_cast<uint4*>(og + static_cast<int64_t>(m0 + r) * row_stride + u * 8) = v;
    }
  }
}

// Whether the loaded image of `kernel` is the sm_90a one (an addon built without sm_90a would
// otherwise run the kernel's empty sm_80 body on a Hopper GPU). Cached per kernel.
template <typename Kernel>
bool sm90ImageOf(Kernel kernel) {
  cudaFuncAttributes attr{};
  return cudaFuncGetAttributes(&attr, kernel) == cudaSuccess && attr.binaryVersion >= 90;
}

}  // namespace attn::cuda::hopper
