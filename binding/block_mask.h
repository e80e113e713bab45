// Reads options.blockMask of an attention call (built and validated by lib/block_sparse.ts) into
// AttnParams or PagedAttnParams. Only the shape is re-checked here: enough that no kernel indexes
// outside the tensors.
#pragma once
#include <napi.h>

#include <vector>

#include "common/attention_params.h"
#include "common/paged_params.h"
#include "runtime/storage.h"

namespace binding {

// Sets p.block_* when opt has a blockMask (p's batch, heads and seqlen_q must be set already).
// Returns the storages the enqueued work must keep alive (empty without a mask).
std::vector<attn::StoragePtr> readBlockMask(Napi::Object opt, const attn::Device& dev, attn::AttnParams& p);

// The paged form: the grid's batch is the call's sequences, its query blocks cover the longest
// sequence's query rows (p.max_seqlen_q with cu_seqlens_q, else 1).
std::vector<attn::StoragePtr> readBlockMask(Napi::Object opt, const attn::Device& dev, attn::PagedAttnParams& p);

}  // namespace binding
