// Paged attention entry points: support check, split choice, workspace size and dispatch of the
// kernel (decode_hd*.cu) and, with more than one split, the combine (combine.cu).
#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "../../common/error.h"
#include "../check.h"
#include "../common/launch_args.h"
#include "paged_attention.h"
#include "paged_internal.h"
#include "paged_checks.h"
#include "split_workspace.h"

namespace attn::cuda {
namespace {


// Query rows per sequence the grid must cover.
int64_t maxRowsQ(const PagedAttnParams& p) { return p.cu_seqlens_q ? std::max(p.max_seqlen_q, 0) : 1; }

int64_t mblocksOf(const PagedAttnParams& p) {
  const int64_t group = p.heads_q / p.heads_kv;
  return (maxRowsQ(p) * group + paged::kDecodeRows - 1) / paged::kDecodeRows;
}

}  // namespace

bool pagedAttentionSupported(const PagedAttnParams& p, std::string* why) {
  auto fail = [&](const std::string& msg) {
    if (why) *why = msg;
    return false;
  };
  const std::string problem = paged::pagedCommonProblem(p);
  if (!problem.empty()) return fail(problem);
  if (p.block_row_ptr != nullptr) return fail("a block mask runs on the prefill kernel (pagedPrefill), not the decode kernel");
  if (p.quantized() && (!p.k_scales || !p.v_scales || !p.k_smooth || !p.k_chan || !p.v_chan))
    return fail("a quantized cache needs k_scales, v_scales, k_smooth, k_chan and v_chan");
  if (!p.quantized() && p.cache_dtype != p.dtype && p.cache_dtype != DType::F32)
    return fail("the cache's dtype must equal q's unless the cache is quantized");
  if (p.num_splits > paged::kMaxSplits) return fail("num_splits exceeds " + std::to_string(paged::kMaxSplits));
  if (static_cast<int64_t>(p.batch) * p.heads_kv * mblocksOf(p) > INT_MAX) return fail("grid too large");
  if (why) why->clear();
  return true;
}

int pagedChooseSplits(const PagedAttnParams& p, int num_sms) {
  if (p.heads_kv <= 0 || p.heads_q <= 0 || p.heads_q % p.heads_kv != 0 || p.batch <= 0 || num_sms <= 0) return 1;
  const int max_splits = paged::maxSplitsByLength(p.max_seqlen_k, paged::kMinKeysPerSplit, paged::kMaxAutoSplits);
  if (max_splits <= 1) return 1;
  // Units are (sequence, kv head, row block) CTAs; alone on its SM one runs the deep pipeline
  // (decodeMaxStages), which keeps HBM busy by itself (measured on H100). Otherwise CTAs share SMs,
  // decodeCtasPerSm each. Within 5% of the best wave: at 0.85 the 8-bit cache took 2 splits at
  // batch 64 x 8k, 2.59 waves, 420 us, where 3 splits fill 3.88. The 16-bit kernel's choices on the
  // benchmark grid are the same.
  const int64_t units = static_cast<int64_t>(p.batch) * p.heads_kv * mblocksOf(p);
  const int per_sm = p.quantized() ? paged::decodeQuantCtasPerSm(p.head_dim) : paged::decodeCtasPerSm(p.head_dim);
  const int splits = paged::waveBalancedSplits(units, max_splits, num_sms, static_cast<int64_t>(num_sms) * per_sm, 0.95);
  // Fewer units than SMs gave about one CTA per SM. Mid-length splits (257-1024 keys) then run
  // faster as twice as many half splits, two CTAs per SM: at batch 1 the kernel is bound by
  // instruction latency with one warp per scheduler, and the second CTA's warps hide it (H100,
  // 1 x 8k: 32 splits 14.3 us vs 16 splits 15.4, perf run 23; shorter splits are fixed-cost bound,
  // longer ones bandwidth bound, and lose).
  const int64_t keys = (static_cast<int64_t>(p.max_seqlen_k) + splits - 1) / splits;
  const bool doubled = units < num_sms && !p.quantized() && keys > 256 && keys <= 1024 && 2 * splits <= max_splits &&
                       units * 2 * splits <= static_cast<int64_t>(num_sms) * per_sm;
  // Split chunks of 2 tiles become 1 tile while the grid stays within half the SMs: a CTA's time
  // is then mostly latency, and one tile has less of it. H100, µs, session 11 (perf runs 51-52):
  // 1 x 256: 4 splits 6.3-6.4 vs 2 6.8; 1 x 512: 8 splits 6.6-6.7 vs 4 7.0. With more CTAs it
  // loses: 1 x 1k: 16 splits 7.7 vs 8 7.2-7.3; 2 x 512: 8 splits 7.4 vs 4 7.1.
  const bool one_tile = !doubled && !p.quantized() && keys > paged::kDecodeTileKeys && keys <= 2 * paged::kDecodeTileKeys &&
                        units * 2 * splits <= num_sms / 2;
  return doubled || one_tile ? 2 * splits : splits;
}

int64_t pagedCounterSlots(const PagedAttnParams& p) {
  return static_cast<int64_t>(std::max(p.batch, 0)) * std::max(p.heads_kv, 0) * mblocksOf(p);
}

int64_t pagedWorkspaceFloats(const PagedAttnParams& p) {
  if (p.num_splits <= 1) return 0;
  return static_cast<int64_t>(p.num_splits) * p.total_q * p.heads_q * (p.head_dim + 1);
}

void pagedAttention(const PagedAttnParams& p, int sms, cudaStream_t stream) {
  std::string why;
  if (!pagedAttentionSupported(p, &why)) throwRange("pagedAttention: " + why);
  if (p.batch == 0 || p.total_q == 0) return;

  const int64_t per_split = static_cast<int64_t>(p.total_q) * p.heads_q * (p.head_dim + 1);
  const int splits = paged::resolveSplits("pagedAttention", p.num_splits, [&] { return pagedChooseSplits(p, sms); }, per_split, p.workspace,
                                           p.workspace_floats);

  paged::DecodeArgs a{};
  setQueryArgs(a, p);
  a.k_pages = p.k_pages;
  a.v_pages = p.v_pages;
  a.page_stride = p.page_stride;
  a.page_head_stride = p.page_head_stride;
  setBlockTableArgs(a, p);
  a.seq_lens = p.seq_lens;
  if (!p.seq_lens) {  // a small decode batch: rows and lengths in the kernel's arguments
    for (int b = 0; b < p.batch; ++b) {
      a.inline_rows[b] = p.host_block_table_rows ? p.host_block_table_rows[b] : b;
      a.inline_lens[b] = p.host_seq_lens[b];
    }
  }
  a.batch = p.batch;
  a.total_q = p.total_q;
  a.heads_q = p.heads_q;
  a.heads_kv = p.heads_kv;
  a.group = p.heads_q / p.heads_kv;
  a.head_dim = p.head_dim;
  a.mblocks = static_cast<int>(mblocksOf(p));
  setScoreArgs(a, p.scale, p.softcap);
  a.alibi = p.alibi_slopes;
  a.window_left = p.window_left;
  a.window_right = p.causal ? 0 : p.window_right;  // causal folds into window_right = 0
  a.num_splits = splits;
  a.num_sms = sms;
  a.ws_o = splits > 1 ? p.workspace : nullptr;
  a.ws_lse = splits > 1 ? p.workspace + static_cast<int64_t>(splits) * p.total_q * p.heads_q * p.head_dim : nullptr;
  a.counters = splits > 1 && splits <= paged::kFusedMaxSplits ? p.split_counters : nullptr;
  a.kv_fp8 = p.cache_dtype == DType::FP8E4M3 ? 1 : 0;
  a.k_scales = p.k_scales;
  a.v_scales = p.v_scales;
  a.scale_page_stride = p.scale_page_stride;
  a.scale_head_stride = p.scale_head_stride;
  a.k_smooth = p.k_smooth;
  a.k_chan = p.k_chan;
  a.v_chan = p.v_chan;

  if (p.quantized()) {
    switch (p.head_dim) {
      case 64: paged::launchDecodeQuantHd64(p.dtype, a, stream); break;
      case 128: paged::launchDecodeQuantHd128(p.dtype, a, stream); break;
      case 256: paged::launchDecodeQuantHd256(p.dtype, a, stream); break;
      default: throwRange("pagedAttention: unsupported head_dim");
    }
  } else {
    switch (p.head_dim) {
      case 64: paged::launchDecodeHd64(p.dtype, a, stream); break;
      case 128: paged::launchDecodeHd128(p.dtype, a, stream); break;
      case 256: paged::launchDecodeHd256(p.dtype, a, stream); break;
      default: throwRange("pagedAttention: unsupported head_dim");
    }
  }
  if (splits > 1 && a.counters == nullptr) paged::launchCombine(p.dtype, a, stream);
}

}  // namespace attn::cuda
