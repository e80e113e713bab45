// Sparse decode over the paged cache: the pagedSummarize op (page key summaries, kept by
// PagedKVCache.append) and the top-k page selection that pagedAttention runs before its decode
// when options.topKPages is set (csrc/common/page_topk_params.h).
#pragma once
#include <napi.h>

#include <vector>

#include "common/page_topk_params.h"
#include "common/paged_params.h"
#include "runtime/storage.h"
#include "tensor_ref.h"

namespace binding {

struct TopKPlan {
  bool active = false;
  attn::PageTopKParams select;            // writes the compacted table the decode reads
  std::vector<attn::StoragePtr> holds;    // summaries, compacted table, lengths, workspace
};

// Reads options.topKPages / options.summaries. When set, plans the selection and rewrites p (which
// must be complete, its table, rows and lengths on the device) to decode over the compacted table
// instead: row b, compacted lengths, no row indirection. seqLens are the host copy of p.seq_lens.
TopKPlan planTopK(Napi::Object opt, const TensorRef& q, const TensorRef& pool, int layer, const std::vector<int32_t>& seqLens,
                  bool multiQuery, attn::PagedAttnParams& p);

void registerPageTopKOps(Napi::Env env, Napi::Object exports);

}  // namespace binding
