// Head dim 128 instantiations (f16, bf16) of the forward kernel.
// Tile: 128 x 64 keys, 4 warps (2 m16 tiles each), Q re-read from smem, K double-buffered.
#include "flash_fwd_hdims.h"
#include "flash_kernel.cuh"

namespace attn::cuda::flash {

// Tile (kBlockM, kBlockN, warps, Q in registers, K stages, CTAs per SM); a benchmark build may
// override it with -DATTN_D128_M=... (scripts/tune-flash.sh) to compare shapes.
#ifdef ATTN_D128_M
#define ATTN_FLASH_HDIM128_TILE ATTN_D128_M, ATTN_D128_N, ATTN_D128_WARPS, ATTN_D128_QREGS, ATTN_D128_KSTAGES, ATTN_D128_CTAS
#else
#define ATTN_FLASH_HDIM128_TILE 128, 64, 4, false, 2, 2
#endif
template <typename Elem>
using Hdim128Traits = FwdTraits<Elem, 128, ATTN_FLASH_HDIM128_TILE>;

void flashFwdHdim128(const AttnParams& p, int /*sm*/, cudaStream_t stream) {
  launchFlashFwdForDtype<Hdim128Traits>(p, stream);
}

}  // namespace attn::cuda::flash
