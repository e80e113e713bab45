// The Hopper (sm_90a) dense forward: which calls it takes, and its per-head-dim entry points.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../../common/attention_params.h"

namespace attn::cuda::hopper {

// True when the sm_90a kernel serves this call (the sm_80 kernel takes every other one): compute
// capability 9.0, f16/bf16, head dim 64/128/256, keys present, and ATTN_CUDA_FORCE_SM80 unset
// (benchmarks and tests set it to run the sm_80 kernel on a Hopper GPU). Alignment is checked by
// flashForwardSupported already (TMA has the same 16-byte rules as cp.async).
bool flashForwardSm90Applies(const AttnParams& p, int sm);

void flashFwdSm90Hdim64(const AttnParams& p, cudaStream_t stream);
void flashFwdSm90Hdim128(const AttnParams& p, cudaStream_t stream);
void flashFwdSm90Hdim256(const AttnParams& p, cudaStream_t stream);

}  // namespace attn::cuda::hopper
