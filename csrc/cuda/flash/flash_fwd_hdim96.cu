// Head dim 96 instantiations (f16, bf16) of the forward kernel.
// Tile: 128 x 64 keys, 4 warps (2 m16 tiles each), Q re-read from smem, K double-buffered.
#include "flash_fwd_hdims.h"
#include "flash_kernel.cuh"

namespace attn::cuda::flash {

template <typename Elem>
using Hdim96Traits = FwdTraits<Elem, 96, 128, 64, 4, false, 2, 2>;

void flashFwdHdim96(const AttnParams& p, int /*sm*/, cudaStream_t stream) {
  if (p.dtype == DType::F16) {
    launchFlashFwd<Hdim96Traits<__half>>(p, stream);
  } else {
    launchFlashFwd<Hdim96Traits<__nv_bfloat16>>(p, stream);
  }
}

}  // namespace attn::cuda::flash
