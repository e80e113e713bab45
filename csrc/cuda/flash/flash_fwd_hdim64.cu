// Head dim 64 instantiations (f16, bf16) of the forward kernel. Tile: see fwd_tiles.cuh.
#include "flash_fwd_hdims.h"
#include "fwd_tiles.cuh"

namespace attn::cuda::flash {

void flashFwdHdim64(const AttnParams& p, int /*sm*/, cudaStream_t stream) {
  launchFlashFwdForDtype<Hdim64Traits>(p, stream);
}

}  // namespace attn::cuda::flash
