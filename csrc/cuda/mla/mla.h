// Multi-head latent attention kernels on CUDA: fused append (with fp8 quantization) and the
// absorbed-weight decode / prefill over the paged latent cache (split-KV + combine).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../../common/mla_params.h"

namespace attn::cuda {

// Whether the kernel handles p on the current device (dtype, alignment, shared memory).
bool mlaAttentionSupported(const MlaAttnParams& p, std::string* why);

// KV splits so that the grid fills `num_sms` SMs.
int mlaChooseSplits(const MlaAttnParams& p, int num_sms);

// Floats of workspace mlaAttention needs for p.num_splits splits (0 when num_splits <= 1).
int64_t mlaWorkspaceFloats(const MlaAttnParams& p);

void mlaAppend(const MlaAppendParams& p, cudaStream_t stream);
void mlaAttention(const MlaAttnParams& p, cudaStream_t stream);

}  // namespace attn::cuda
