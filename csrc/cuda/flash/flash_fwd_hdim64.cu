// Head dim 64 instantiations (f16, bf16) of the forward kernel.
// Tile: 128 x 128 keys, 4 warps (2 m16 tiles each), Q re-read from smem, K double-buffered.
#include "flash_fwd_hdims.h"
#include "flash_kernel.cuh"

namespace attn::cuda::flash {

// Tile (kBlockM, kBlockN, warps, Q in registers, K stages, CTAs per SM); a benchmark build may
// override it with -DATTN_D64_M=... (scripts/tune-flash.sh) to compare shapes.
#ifdef ATTN_D64_M
#define ATTN_FLASH_HDIM64_TILE ATTN_D64_M, ATTN_D64_N, ATTN_D64_WARPS, ATTN_D64_QREGS, ATTN_D64_KSTAGES, ATTN_D64_CTAS
#else
#define ATTN_FLASH_HDIM64_TILE 128, 128, 4, false, 2, 2
#endif
template <typename Elem>
using Hdim64Traits = FwdTraits<Elem, 64, ATTN_FLASH_HDIM64_TILE>;

void flashFwdHdim64(const AttnParams& p, int /*sm*/, cudaStream_t stream) {
  launchFlashFwdForDtype<Hdim64Traits>(p, stream);
}

}  // namespace attn::cuda::flash
