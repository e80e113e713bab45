// Page summaries and top-k page selection on the CPU (csrc/common/page_topk_params.h): the
// reference for csrc/cuda/paged/page_topk.cu.
#pragma once
#include "../common/page_topk_params.h"

namespace attn::cpu {

void pageSummarize(const PageSummaryParams& p);
void pageTopK(const PageTopKParams& p);
void pageChooseChannels(const PageChannelParams& p);

}  // namespace attn::cpu
