// Head dim 256 instantiations (f16, bf16) of the Hopper forward: 128 x 64 tiles, 2 K/V stages.
#include "flash_fwd_sm90.cuh"
#include "flash_fwd_sm90.h"

namespace attn::cuda::hopper {

template <typename Elem>
using Hdim256Traits = Sm90Traits<Elem, 256, 64, 2>;

void flashFwdSm90Hdim256(const AttnParams& p, cudaStream_t stream) { launchFlashFwdSm90ForDtype<Hdim256Traits>(p, stream); }

}  // namespace attn::cuda::hopper
