// Head dim 256 instantiations (f16, bf16) of the forward kernel.
// Tile: 64 x 64 keys, 4 warps (1 m16 tile each), Q re-read from smem, one K buffer.
#include "flash_fwd_hdims.h"
#include "flash_kernel.cuh"

namespace attn::cuda::flash {

template <typename Elem>
using Hdim256Traits = FwdTraits<Elem, 256, 64, 64, 4, false, 1, 2>;

void flashFwdHdim256(const AttnParams& p, int /*sm*/, cudaStream_t stream) {
  if (p.dtype == DType::F16) {
    launchFlashFwd<Hdim256Traits<__half>>(p, stream);
  } else {
    launchFlashFwd<Hdim256Traits<__nv_bfloat16>>(p, stream);
  }
}

}  // namespace attn::cuda::flash
