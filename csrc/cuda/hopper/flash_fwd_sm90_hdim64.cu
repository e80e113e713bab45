// Head dim 64 instantiations (f16, bf16) of the Hopper forward: 128 x 128 tiles, 2 K/V stages.
#include "flash_fwd_sm90.cuh"
#include "flash_fwd_sm90.h"

namespace attn::cuda::hopper {

template <typename Elem>
using Hdim64Traits = Sm90Traits<Elem, 64, 128, 2>;

void flashFwdSm90Hdim64(const AttnParams& p, cudaStream_t stream) { launchFlashFwdSm90ForDtype<Hdim64Traits>(p, stream); }

}  // namespace attn::cuda::hopper
