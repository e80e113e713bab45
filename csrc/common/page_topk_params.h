// Top-k page selection for decode over the paged cache (Quest-style page summaries).
//
// Summaries: per layer two planes, min and max, each [num_pages, heads_kv, R] in the cache dtype:
// the channel-wise min and max of K over the filled slots of the page (exact: min/max of stored
// values), for R = head_dim channels (all) or for R label channels per (layer, kv head), the
// channel list channels[hk][0 .. R) (ascending; chosen at the layer's first append by
// PageChannelParams, or given by the user). They are kept up to date by every append
// (PageSummaryParams) and copied with a page on copy-on-write.
//
// Selection, per sequence of n = ceil(len / page_size) pages, one query q (heads_q x head_dim):
//   score(p) = sum over query heads h, summary channels j of
//              max(q[h][c_j] * min[p][g(h)][j], q[h][c_j] * max[p][g(h)][j])
// (g(h) = the KV head of h, c_j = channels[g(h)][j] or j; with all channels an upper bound of
// sum_h q_h . k for every key k of page p, summed over all query heads because one page list
// serves every head of the sequence; with label channels the same bound of the partial dot
// product over those channels only, an approximation in the spirit of Double Sparsity). Both
// backends evaluate it as sum_{hk, j} (max[p][hk][j] * P[hk][j] + min[p][hk][j] * N[hk][j]) with
// P / N the sums over the group's query heads of max(q, 0) / min(q, 0) at channel c_j (equal in
// exact arithmetic, as min <= max). If n <= k every page is
// kept. Otherwise page 0 (attention sinks) and page n - 1 (the partial, most recent one) are always
// kept, plus the k - 2 pages of 1 .. n - 2 with the highest scores, compared by pageScoreKey (NaN
// lowest), ties to the lower page index. The kept pages, in ascending order, form the sequence's
// row of a compacted block table; the compacted sequence has compactedLength tokens.
#pragma once
#include <cstdint>
#include <cstring>

#include "dtype.h"

namespace attn {

// Recomputes the summary of the pages an append wrote. Item i: table row rows[i], logical page
// logical[i], slots [slot_begin[i], slot_end[i]) newly written; slot_begin 0 restarts the summary,
// otherwise the new slots are folded into the existing one.
struct PageSummaryParams {
  DType dtype = DType::F32;
  const void* k_pages = nullptr;  // the layer's K plane (PagedAttnParams layout)
  int64_t page_stride = 0, page_head_stride = 0;
  void* sum_min = nullptr;  // the layer's min plane [num_pages, heads_kv, sum_dim]
  void* sum_max = nullptr;
  int64_t sum_page_stride = 0;  // heads_kv * sum_dim
  int sum_dim = 0;              // R: head_dim (every channel) or the label channels per kv head
  const int32_t* channels = nullptr;  // the layer's [heads_kv, sum_dim] channel indices, or null (channel j)
  const int32_t* block_table = nullptr;
  int block_table_stride = 0;
  const int32_t* rows = nullptr;
  const int32_t* logical = nullptr;
  const int32_t* slot_begin = nullptr;
  const int32_t* slot_end = nullptr;
  int count = 0;
  int heads_kv = 0, head_dim = 0, page_size = 0;
};

// Scores every page of each sequence against its decode query and writes the compacted block
// table out_table [batch, k] (row b: the kept physical pages in logical order; unused entries -1).
struct PageTopKParams {
  DType dtype = DType::F32;
  const void* q = nullptr;  // [batch, heads_q, head_dim], one query per sequence
  int64_t q_row_stride = 0, q_head_stride = 0;
  const void* sum_min = nullptr;
  const void* sum_max = nullptr;
  int64_t sum_page_stride = 0;  // heads_kv * sum_dim
  int sum_dim = 0;              // as PageSummaryParams
  const int32_t* channels = nullptr;
  const int32_t* block_table = nullptr;
  int block_table_stride = 0;
  const int32_t* block_table_rows = nullptr;  // [batch] or null (row b)
  const int32_t* seq_lens = nullptr;          // [batch]
  int batch = 0, heads_q = 0, heads_kv = 0, head_dim = 0, page_size = 0;
  int max_pages = 0;  // max over the batch of ceil(seq_lens[b] / page_size)
  int k = 0;          // pages kept per sequence, 1 <= k <= max_pages
  int32_t* out_table = nullptr;
  uint32_t* keys = nullptr;     // CUDA workspace [batch, max_pages]: pageScoreKey of the scores
  unsigned* counters = nullptr;  // CUDA: [batch] zero-initialized counters, left zero
};

// Label channels of one layer, from the tokens of its first append k ([tokens, heads_kv, head_dim]):
// per kv head the `count` channels of largest mean |k| (NaN lowest), ties to the lower channel,
// written ascending to out[hk * count ...]. The sums are taken in float64 in a fixed order (chunks
// of kChannelChunk tokens summed in token order, then the chunk sums in chunk order) that both
// backends follow, so they choose bit-identically.
struct PageChannelParams {
  DType dtype = DType::F32;
  const void* k = nullptr;
  int64_t k_row_stride = 0, k_head_stride = 0;  // elements; channels contiguous
  int tokens = 0, heads_kv = 0, head_dim = 0, count = 0;
  int32_t* out = nullptr;     // [heads_kv, count]
  double* partial = nullptr;  // CUDA workspace [ceil(tokens / kChannelChunk), heads_kv, head_dim]
};
constexpr int kChannelChunk = 256;

// The ranking key of a channel's |k| sum: NaN lowest.
inline double channelKey(double s) { return s != s ? -1.0 : s; }

// Orders scores as unsigned integers: larger float, larger key; NaN is 0, below everything.
inline uint32_t pageScoreKey(float s) {
  if (s != s) return 0u;
  uint32_t bits;
  std::memcpy(&bits, &s, sizeof bits);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Tokens of a sequence of len tokens after keeping k of its pages (the last one always among them).
inline int64_t compactedLength(int64_t len, int64_t page_size, int64_t k) {
  const int64_t n = (len + page_size - 1) / page_size;
  if (n <= k) return len;
  return (k - 1) * page_size + (len - (n - 1) * page_size);
}

}  // namespace attn
