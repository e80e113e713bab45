// Head dim 128 instantiations (f16, bf16) of the Hopper forward.
#include <cstdlib>

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
// 176-key blocks with 2 stages where a tile visits many key blocks: run 60 had them 1-4% ahead at
// 8k-16k keys (causal too) and behind at 2k-4k. ATTN_SM90_D128_WIDE=1 takes them for every
// unmasked call, =0 never (measurements; the GPU tests force them on to cover them).
template <typename Elem>
using Hdim128WideTraits = Sm90Traits<Elem, 128, 176, 2>;

static bool wideBlocks(const AttnParams& p) {
  if (p.block_col_idx != nullptr) return false;  // masks are walked in 128-key blocks
  static const char* const forced = std::getenv("ATTN_SM90_D128_WIDE");
  if (forced != nullptr && forced[0] != '\0') return forced[0] != '0';
  return p.window_left < 0 && p.window_right < 0 && p.seqlen_k >= 8192;
}

void flashFwdSm90Hdim128(const AttnParams& p, cudaStream_t stream) {
  if (wideBlocks(p)) return launchFlashFwdSm90ForDtype<Hdim128WideTraits>(p, stream);
  launchFlashFwdSm90ForDtype<Hdim128Traits>(p, stream);
}

}  // namespace attn::cuda::hopper
