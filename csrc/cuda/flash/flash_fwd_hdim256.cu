// Head dim 256 instantiations (f16, bf16) of the forward kernel.
// Tile: 64 x 64 keys, 4 warps (1 m16 tile each), Q re-read from smem, one K buffer.
#include "flash_fwd_hdims.h"
#include "flash_kernel.cuh"

namespace attn::cuda::flash {

// Tile (kBlockM, kBlockN, warps, Q in registers, K stages, CTAs per SM); a benchmark build may
// override it with -DATTN_D256_M=... (scripts/tune-flash.sh) to compare shapes.
#ifdef ATTN_D256_M
#define ATTN_FLASH_HDIM256_TILE ATTN_D256_M, ATTN_D256_N, ATTN_D256_WARPS, ATTN_D256_QREGS, ATTN_D256_KSTAGES, ATTN_D256_CTAS
#else
#define ATTN_FLASH_HDIM256_TILE 64, 64, 4, false, 1, 2
#endif
template <typename Elem>
using Hdim256Traits = FwdTraits<Elem, 256, ATTN_FLASH_HDIM256_TILE>;

void flashFwdHdim256(const AttnParams& p, int /*sm*/, cudaStream_t stream) {
  launchFlashFwdForDtype<Hdim256Traits>(p, stream);
}

}  // namespace attn::cuda::flash
