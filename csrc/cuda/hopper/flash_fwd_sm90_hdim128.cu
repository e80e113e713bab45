// Head dim 128 instantiations (f16, bf16) of the Hopper forward.
#include "flash_fwd_sm90.cuh"
#include "flash_fwd_sm90.h"

namespace attn::cuda::hopper {

// Key block and K/V stages (query block 128); a tuning build may override them with
// -DATTN_SM90_D128_N=... -DATTN_SM90_D128_STAGES=... (scripts/tune-flash.sh).
#ifndef ATTN_SM90_D128_N
#define ATTN_SM90_D128_N 128
#define ATTN_SM90_D128_STAGES 3
#endif
template <typename Elem>
using Hdim128Traits = Sm90Traits<Elem, 128, ATTN_SM90_D128_N, ATTN_SM90_D128_STAGES>;

void flashFwdSm90Hdim128(const AttnParams& p, cudaStream_t stream) { launchFlashFwdSm90ForDtype<Hdim128Traits>(p, stream); }

}  // namespace attn::cuda::hopper
