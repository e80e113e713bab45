// Tile shapes of the forward kernel for the head dims that the dense forward (flash_fwd_hdim*.cu)
// and the paged prefill (../paged/prefill_hd*.cu) share, so both run one tuned shape.
// Tile (kBlockM, kBlockN, warps, Q in registers, K stages, CTAs per SM); a benchmark build may
// override one with -DATTN_D<dim>_M=... (scripts/tune-flash.sh) to compare shapes.
#pragma once
#include "flash_kernel.cuh"

namespace attn::cuda::flash {

// d64: 128 x 128 keys, 4 warps (2 m16 tiles each), Q re-read from smem, K double-buffered.
#ifdef ATTN_D64_M
#define ATTN_FLASH_HDIM64_TILE ATTN_D64_M, ATTN_D64_N, ATTN_D64_WARPS, ATTN_D64_QREGS, ATTN_D64_KSTAGES, ATTN_D64_CTAS
#else
#define ATTN_FLASH_HDIM64_TILE 128, 128, 4, false, 2, 2
#endif
template <typename Elem>
using Hdim64Traits = FwdTraits<Elem, 64, ATTN_FLASH_HDIM64_TILE>;

// d128: 128 x 64 keys, 4 warps (2 m16 tiles each), Q re-read from smem, K double-buffered.
#ifdef ATTN_D128_M
#define ATTN_FLASH_HDIM128_TILE ATTN_D128_M, ATTN_D128_N, ATTN_D128_WARPS, ATTN_D128_QREGS, ATTN_D128_KSTAGES, ATTN_D128_CTAS
#else
#define ATTN_FLASH_HDIM128_TILE 128, 64, 4, false, 2, 2
#endif
template <typename Elem>
using Hdim128Traits = FwdTraits<Elem, 128, ATTN_FLASH_HDIM128_TILE>;

// d256: 64 x 64 keys, 4 warps (1 m16 tile each), Q re-read from smem, one K buffer.
#ifdef ATTN_D256_M
#define ATTN_FLASH_HDIM256_TILE ATTN_D256_M, ATTN_D256_N, ATTN_D256_WARPS, ATTN_D256_QREGS, ATTN_D256_KSTAGES, ATTN_D256_CTAS
#else
#define ATTN_FLASH_HDIM256_TILE 64, 64, 4, false, 1, 2
#endif
template <typename Elem>
using Hdim256Traits = FwdTraits<Elem, 256, ATTN_FLASH_HDIM256_TILE>;

}  // namespace attn::cuda::flash
