// Parameters for the paged KV cache kernels (append, decode / paged prefill, page copy).
//
// Cache layout, per layer and for K and V alike: [num_pages, heads_kv, page_size, head_dim]
// ("HND" pages: one head's page_size x head_dim tile is contiguous, so a decode block reads
// whole 16-byte rows of one head). Page p, head h, slot s, channel c lives at
//   base + p * page_stride + h * page_head_stride + s * head_dim + c.
// A sequence's logical token position t lives in page block_table[row * block_table_stride + t / page_size]
// at slot t % page_size, where row = block_table_rows ? block_table_rows[b] : b (the cache keeps one
// table row per live sequence; a batch names its rows instead of gathering a table every step).
#pragma once
#include <cstdint>

#include "block_sparse_mask.h"
#include "dtype.h"

namespace attn {

// Writes new tokens into the pages: token r of sequence b (r in [0, cu_new[b+1]-cu_new[b]))
// goes to logical position start_pos[b] + r. The pages must already be in the block table.
struct PagedAppendParams {
  DType dtype = DType::F32;  // of k, v and the cache
  const void* k = nullptr;   // [total_new, heads_kv, head_dim]
  const void* v = nullptr;
  int64_t k_row_stride = 0, k_head_stride = 0;
  int64_t v_row_stride = 0, v_head_stride = 0;
  void* k_pages = nullptr;
  void* v_pages = nullptr;
  int64_t page_stride = 0;       // elements between consecutive pages
  int64_t page_head_stride = 0;  // elements between heads inside a page (= page_size * head_dim)
  const int32_t* block_table = nullptr;  // [rows, block_table_stride]
  int block_table_stride = 0;
  const int32_t* block_table_rows = nullptr;  // [batch]: table row of sequence b; null = row b
  const int32_t* cu_new = nullptr;     // [batch + 1]
  const int32_t* start_pos = nullptr;  // [batch]
  int batch = 0;
  int total_new = 0;
  int heads_kv = 0;
  int head_dim = 0;
  int page_size = 0;

  // Quantized cache (csrc/common/quant.h): cache_dtype FP8E4M3 or INT8, k/v stay `dtype`.
  // One scale per (page, head, slot) at scales + page * scale_page_stride + head * scale_head_stride
  // + slot. K is stored as (k - k_smooth) / k_chan and V as v / v_chan (each [heads_kv][head_dim]):
  // init_smoothing first sets k_smooth to the mean of this call's new K rows and, for an int8
  // cache, k_chan / v_chan to the channels' max |k - mean| / |v| over them so that outlier channels
  // do not set the step of every other channel (1 where that is 0, and always 1 for fp8: see
  // channelScale in quant.h).
  DType cache_dtype = DType::F32;
  float* k_scales = nullptr;
  float* v_scales = nullptr;
  int64_t scale_page_stride = 0, scale_head_stride = 0;
  float* k_smooth = nullptr;
  float* k_chan = nullptr;
  float* v_chan = nullptr;
  bool init_smoothing = false;

  bool quantized() const { return cache_dtype == DType::FP8E4M3 || cache_dtype == DType::INT8; }
};

// Sequences a CUDA decode call can pass in its kernel arguments (PagedAttnParams::host_seq_lens).
constexpr int kPagedInlineBatch = 32;

// Attention of queries against a paged cache. Decode is the case of one query per sequence;
// prefill/append is several (the new tokens, already appended to the cache). Query row r of
// sequence b (r in [0, nq_b)) sits at logical position seq_lens[b] - nq_b + r, so causal masking
// is bottom-right aligned exactly as in AttnParams (offset = seq_lens[b] - nq_b).
//
// The block-sparse mask (BlockSparseMask): query block i of sequence b covers its query rows
// [kSparseBlock * i, kSparseBlock * (i + 1)) (row 0 = its first query, at position seq_lens[b] -
// nq_b), key block c its cached keys [kSparseBlock * c, ...). 16/32-bit caches only; on CUDA only
// the prefill kernel (csrc/cuda/paged/prefill.cu) reads it.
struct PagedAttnParams : BlockSparseMask {
  DType dtype = DType::F32;  // of q, o and the cache
  const void* q = nullptr;   // [total_q, heads_q, head_dim]
  void* o = nullptr;         // [total_q, heads_q, head_dim]
  float* lse = nullptr;      // [total_q, heads_q] float32, may be null
  int64_t q_row_stride = 0, q_head_stride = 0;
  int64_t o_row_stride = 0, o_head_stride = 0;

  const int32_t* cu_seqlens_q = nullptr;  // [batch + 1]; null = one query per sequence
  const void* k_pages = nullptr;
  const void* v_pages = nullptr;
  int64_t page_stride = 0;
  int64_t page_head_stride = 0;
  const int32_t* block_table = nullptr;  // [rows, block_table_stride]
  int block_table_stride = 0;
  const int32_t* block_table_rows = nullptr;  // [batch]: table row of sequence b; null = row b
  const int32_t* seq_lens = nullptr;     // [batch] cached tokens, new ones included
  // CUDA decode only (one query per sequence, no mask, no top-k): with block_table_rows and
  // seq_lens null, these host arrays (read during the launch call only, batch <=
  // kPagedInlineBatch) travel in the kernel's arguments, so the call uploads nothing and the
  // kernel reads no device array before its page lookups.
  const int32_t* host_block_table_rows = nullptr;
  const int32_t* host_seq_lens = nullptr;

  int batch = 0;
  int total_q = 0;
  int max_seqlen_q = 0;
  int max_seqlen_k = 0;  // upper bound of seq_lens, for grid sizing
  int heads_q = 0;
  int heads_kv = 0;
  int head_dim = 0;
  int page_size = 0;

  float scale = 1.0f;
  float softcap = 0.0f;
  bool causal = true;
  int window_left = -1;
  int window_right = -1;
  const float* alibi_slopes = nullptr;

  // Split-KV (flash-decoding). num_splits <= 0: the backend picks. The workspace is owned by
  // the caller: float32 [num_splits, total_q, heads_q, head_dim] + [num_splits, total_q, heads_q].
  int num_splits = 0;
  float* workspace = nullptr;
  int64_t workspace_floats = 0;
  // CUDA, optional: pagedCounterSlots(p) zeroed counters that stay zero between launches (the
  // device context owns them); with them a split decode merges its splits in the same kernel.
  unsigned* split_counters = nullptr;

  // Quantized cache (see PagedAppendParams): the true key is stored * k_scale * k_chan + k_smooth,
  // the true value stored * v_scale * v_chan. dtype stays that of q and o.
  DType cache_dtype = DType::F32;
  const float* k_scales = nullptr;
  const float* v_scales = nullptr;
  int64_t scale_page_stride = 0, scale_head_stride = 0;
  const float* k_smooth = nullptr;
  const float* k_chan = nullptr;
  const float* v_chan = nullptr;

  bool quantized() const { return cache_dtype == DType::FP8E4M3 || cache_dtype == DType::INT8; }
};

// Copies whole pages (every layer, K and V) src[i] -> dst[i]: copy-on-write of a shared page.
struct PageCopyParams {
  void* pool = nullptr;             // the whole cache: [layers, 2, num_pages, page_elems]
  int64_t page_bytes = 0;           // bytes of one page of one layer's K (or V)
  int64_t planes = 0;               // layers * 2
  int64_t plane_stride_bytes = 0;   // bytes between planes (= num_pages * page_bytes)
  const int32_t* src = nullptr;
  const int32_t* dst = nullptr;
  int count = 0;
};

}  // namespace attn
