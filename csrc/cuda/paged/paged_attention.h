// Paged KV cache kernels on CUDA: append, decode / paged prefill (split-KV), page copy.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../../common/paged_params.h"

namespace attn::cuda {

bool pagedAttentionSupported(const PagedAttnParams& p, std::string* why);

// Picks the number of KV splits for flash-decoding so that the grid fills `num_sms` SMs.
int pagedChooseSplits(const PagedAttnParams& p, int num_sms);

// Counters (PagedAttnParams::split_counters) a launch of p may use: one per CTA row of its grid.
int64_t pagedCounterSlots(const PagedAttnParams& p);

// Floats of workspace pagedAttention needs for p.num_splits splits (0 when num_splits == 1).
int64_t pagedWorkspaceFloats(const PagedAttnParams& p);

void pagedAppend(const PagedAppendParams& p, cudaStream_t stream);
// append_quant.cu: pagedAppend into an fp8e4m3 / int8 cache (pagedAppend dispatches to it).
void pagedAppendQuant(const PagedAppendParams& p, cudaStream_t stream);
// num_sms: the device's multiprocessor count (the split choice fills it).
void pagedAttention(const PagedAttnParams& p, int num_sms, cudaStream_t stream);
void copyPages(const PageCopyParams& p, cudaStream_t stream);

}  // namespace attn::cuda
