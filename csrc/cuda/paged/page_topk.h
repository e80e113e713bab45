// Page key summaries and top-k page selection on CUDA (csrc/common/page_topk_params.h).
#pragma once
#include <cuda_runtime.h>

#include "../../common/page_topk_params.h"

namespace attn::cuda {

// Enqueues the summary update of the pages an append wrote (after the append, same stream).
void pageSummarize(const PageSummaryParams& p, cudaStream_t stream);

// Enqueues scoring (p.scores: [batch, max_pages] floats of workspace) and the selection that
// writes p.out_table. f16 / bf16, head_dim 64, 128 or 256 (the decode kernel's).
void pageTopK(const PageTopKParams& p, cudaStream_t stream);

}  // namespace attn::cuda
