// Head dim 96 instantiations (f16, bf16) of the forward kernel.
// Tile: 128 x 64 keys, 4 warps (2 m16 tiles each), Q re-read from smem, K double-buffered.
#include "flash_fwd_hdims.h"
#include "flash_kernel.cuh"

namespace attn::cuda::flash {

// Tile (kBlockM, kBlockN, warps, Q in registers, K stages, CTAs per SM); a benchmark build may
// override it with -DATTN_D96_M=... (scripts/tune-flash.sh) to compare shapes.
#ifdef ATTN_D96_M
#define ATTN_FLASH_HDIM96_TILE ATTN_D96_M, ATTN_D96_N, ATTN_D96_WARPS, ATTN_D96_QREGS, ATTN_D96_KSTAGES, ATTN_D96_CTAS
#else
#define ATTN_FLASH_HDIM96_TILE 128, 64, 4, false, 2, 2
#endif
template <typename Elem>
using Hdim96Traits = FwdTraits<Elem, 96, ATTN_FLASH_HDIM96_TILE>;

void flashFwdHdim96(const AttnParams& p, int /*sm*/, cudaStream_t stream) {
  launchFlashFwdForDtype<Hdim96Traits>(p, stream);
}

}  // namespace attn::cuda::flash
