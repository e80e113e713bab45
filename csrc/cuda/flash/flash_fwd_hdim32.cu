// Head dim 32 instantiations (f16, bf16) of the forward kernel.
// Tile: 128 x 128 keys, 4 warps (2 m16 tiles each), Q re-read from smem, K double-buffered.
#include "flash_fwd_hdims.h"
#include "flash_kernel.cuh"

namespace attn::cuda::flash {

// Tile (kBlockM, kBlockN, warps, Q in registers, K stages, CTAs per SM); a benchmark build may
// override it with -DATTN_D32_M=... (scripts/tune-flash.sh) to compare shapes.
#ifdef ATTN_D32_M
#define ATTN_FLASH_HDIM32_TILE ATTN_D32_M, ATTN_D32_N, ATTN_D32_WARPS, ATTN_D32_QREGS, ATTN_D32_KSTAGES, ATTN_D32_CTAS
#else
#define ATTN_FLASH_HDIM32_TILE 128, 128, 4, false, 2, 2
#endif
template <typename Elem>
using Hdim32Traits = FwdTraits<Elem, 32, ATTN_FLASH_HDIM32_TILE>;

void flashFwdHdim32(const AttnParams& p, int /*sm*/, cudaStream_t stream) {
  launchFlashFwdForDtype<Hdim32Traits>(p, stream);
}

}  // namespace attn::cuda::flash
