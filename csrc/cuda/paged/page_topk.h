// Page key summaries and top-k page selection on CUDA (csrc/common/page_topk_params.h).
#pragma once
#include <cuda_runtime.h>

#include "../../common/page_topk_params.h"

namespace attn::cuda {

// Enqueues the summary update of the pages an append wrote (after the append, same stream).
void pageSummarize(const PageSummaryParams& p, cudaStream_t stream);

// Enqueues scoring and selection (one kernel; p.keys: [batch, max_pages] uint32 of workspace,
// p.counters: [batch] zeroed counters, left zero) that writes p.out_table. f16 / bf16; kv heads x
// summary channels a multiple of 8.
void pageTopK(const PageTopKParams& p, int multiprocessors, cudaStream_t stream);

// Enqueues the choice of a layer's label channels (p.partial: workspace of
// ceil(tokens / kChannelChunk) * heads_kv * head_dim doubles).
void pageChooseChannels(const PageChannelParams& p, cudaStream_t stream);

}  // namespace attn::cuda
