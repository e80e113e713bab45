// Paged KV cache operations on the CPU: the same semantics as csrc/cuda/paged.
#pragma once
#include "../common/paged_params.h"

namespace attn::cpu {

void pagedAppend(const PagedAppendParams& p);
void pagedAttention(const PagedAttnParams& p);  // ignores num_splits / workspace
void copyPages(const PageCopyParams& p);

}  // namespace attn::cpu
