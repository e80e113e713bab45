// Head dim 64 instantiations (f16, bf16) of the Hopper forward.
#include "flash_fwd_sm90.cuh"
#include "flash_fwd_sm90.h"

namespace attn::cuda::hopper {

// Dense calls: three consumer warpgroups (192-row tiles, 160 registers each) hide the softmax,
// which at d64 costs as much as the two GEMMs, better than two (+7-15%, docs/perf.md run 36).
// Block-sparse calls keep two (128-row tiles): a mask lists key blocks per 128 query rows.
// A tuning build may override the dense key block and K/V stages with -DATTN_SM90_D64_N=...
// -DATTN_SM90_D64_STAGES=... (scripts/tune-flash.sh).
#ifndef ATTN_SM90_D64_N
#define ATTN_SM90_D64_N 128
#define ATTN_SM90_D64_STAGES 2
#endif
template <typename Elem>
using Hdim64Traits = Sm90Traits<Elem, 64, ATTN_SM90_D64_N, ATTN_SM90_D64_STAGES, 3>;
template <typename Elem>
using Hdim64MaskedTraits = Sm90Traits<Elem, 64, 128, 2, 2>;

void flashFwdSm90Hdim64(const AttnParams& p, cudaStream_t stream) {
  if (p.block_col_idx != nullptr) return launchFlashFwdSm90ForDtype<Hdim64MaskedTraits>(p, stream);
  launchFlashFwdSm90ForDtype<Hdim64Traits>(p, stream);
}

}  // namespace attn::cuda::hopper
