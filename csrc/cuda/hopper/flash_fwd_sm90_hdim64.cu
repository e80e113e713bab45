// Head dim 64 instantiations (f16, bf16) of the Hopper forward.
#include "flash_fwd_sm90.cuh"
#include "flash_fwd_sm90.h"

namespace attn::cuda::hopper {

// Key block and K/V stages (query block 128); a tuning build may override them with
// -DATTN_SM90_D64_N=... -DATTN_SM90_D64_STAGES=... (scripts/tune-flash.sh).
#ifndef ATTN_SM90_D64_N
#define ATTN_SM90_D64_N 128
#define ATTN_SM90_D64_STAGES 2
#endif
template <typename Elem>
using Hdim64Traits = Sm90Traits<Elem, 64, ATTN_SM90_D64_N, ATTN_SM90_D64_STAGES>;

void flashFwdSm90Hdim64(const AttnParams& p, cudaStream_t stream) { launchFlashFwdSm90ForDtype<Hdim64Traits>(p, stream); }

}  // namespace attn::cuda::hopper
