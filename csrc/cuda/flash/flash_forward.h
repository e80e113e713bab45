// Dense attention forward on CUDA (sm_80+: mma.sync / ldmatrix / cp.async).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../../common/attention_params.h"

namespace attn::cuda {

// Whether a kernel covers this dtype / head_dim on a device of compute capability `sm`
// (e.g. 80, 90). On false, *why says what is missing.
bool flashForwardSupported(const AttnParams& p, int sm, std::string* why);

// Enqueues the forward on `stream`. Pointers (including cu_seqlens and alibi_slopes) are device
// pointers. Throws attn::Error on an unsupported combination or a CUDA error.
void flashForward(const AttnParams& p, int sm, cudaStream_t stream);

}  // namespace attn::cuda
