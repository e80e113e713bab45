// Per-head-dim entry points of the forward kernel. Each lives in its own flash_fwd_hdimN.cu so
// the instantiations compile in parallel and flash_forward.cu never sees the kernel template.
#pragma once
#include <cuda_runtime.h>

#include "../../common/attention_params.h"

namespace attn::cuda::flash {

// p.dtype is F16 or BF16 and p.head_dim matches (checked by flashForwardSupported).
void flashFwdHdim32(const AttnParams& p, int sm, cudaStream_t stream);
void flashFwdHdim64(const AttnParams& p, int sm, cudaStream_t stream);
void flashFwdHdim96(const AttnParams& p, int sm, cudaStream_t stream);
void flashFwdHdim128(const AttnParams& p, int sm, cudaStream_t stream);
void flashFwdHdim256(const AttnParams& p, int sm, cudaStream_t stream);

}  // namespace attn::cuda::flash
