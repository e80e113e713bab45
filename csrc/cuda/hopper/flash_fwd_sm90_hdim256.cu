// Head dim 256 instantiations (f16, bf16) of the Hopper forward.
#include "flash_fwd_sm90.cuh"
#include "flash_fwd_sm90.h"

namespace attn::cuda::hopper {

// Key block and K/V stages (query block 128); a tuning build may override them with
// -DATTN_SM90_D256_N=... -DATTN_SM90_D256_STAGES=... (scripts/tune-flash.sh).
#ifndef ATTN_SM90_D256_N
#define ATTN_SM90_D256_N 80
#define ATTN_SM90_D256_STAGES 2
#endif
template <typename Elem>
using Hdim256Traits = Sm90Traits<Elem, 256, ATTN_SM90_D256_N, ATTN_SM90_D256_STAGES>;

void flashFwdSm90Hdim256(const AttnParams& p, cudaStream_t stream) { launchFlashFwdSm90ForDtype<Hdim256Traits>(p, stream); }

}  // namespace attn::cuda::hopper
