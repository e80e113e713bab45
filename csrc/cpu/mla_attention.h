// Multi-head latent attention over the paged latent cache on the CPU: the reference for
// csrc/cuda/mla (same semantics, see csrc/common/mla_params.h).
#pragma once
#include "../common/mla_params.h"

namespace attn::cpu {

void mlaAppend(const MlaAppendParams& p);
void mlaAttention(const MlaAttnParams& p);  // ignores num_splits / workspace

}  // namespace attn::cpu
