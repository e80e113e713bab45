#include "attention.h"

#include <algorithm>
#include <vector>

#include "attend_chunk.h"
#include "dense_sequences.h"
#include "element_io.h"
#include "mask_ranges.h"
#include "parallel.h"
#include "score_rules.h"

namespace attn::cpu {
void attentionForward(const AttnParams& p) {
  const int D = p.head_dim;
  const int group = p.heads_q / p.heads_kv;
  ScoreRules rules{p.scale, p.softcap, p.window_left, p.window_right};

  // Upconvert K and V once per call to float32 [batch][heads_kv][len_k][D]: every query head of a
  // group re-reads them, so converting per access would dominate the run time for f16/bf16.
  std::vector<int64_t> kv_base(p.batch + 1, 0);
  for (int b = 0; b < p.batch; ++b) kv_base[b + 1] = kv_base[b] + bounds(p, b).len_k * p.heads_kv * D;
  std::vector<float> kf(kv_base[p.batch]), vf(kv_base[p.batch]);
  int64_t kv_rows = kv_base[p.batch] / D;
  parallelFor(kv_rows, 64, [&](int64_t begin, int64_t end) {
    int b = 0;
    for (int64_t row = begin; row < end; ++row) {
      // row enumerates (b, hk, j) in the float layout
      while (kv_base[b + 1] <= row * D) ++b;
      SeqBounds sb = bounds(p, b);
      int64_t local = row - kv_base[b] / D;
      int hk = static_cast<int>(local / sb.len_k);
      int64_t j = local % sb.len_k;
      loadRow(p.k, rowOffset(p, p.k_batch_stride, p.k_row_stride, p.k_head_stride, b, sb.k_row0, j, hk), p.dtype, D,
              &kf[row * D]);
      loadRow(p.v, rowOffset(p, p.v_batch_stride, p.v_row_stride, p.v_head_stride, b, sb.k_row0, j, hk), p.dtype, D,
              &vf[row * D]);
    }
  });

  // One work item per (sequence, head, block of kRows query rows): the rows take every kChunk-key
  // chunk of K/V in turn while it is in cache, instead of each row streaming all of K/V by itself
  // (at 1k keys, d128, one row's K/V is 1 MB; docs/perf.md, session 13). kRows divides
  // kSparseBlock, so a block's rows share one block-sparse mask row.
  std::vector<int64_t> item_base(p.batch + 1, 0);
  for (int b = 0; b < p.batch; ++b) item_base[b + 1] = item_base[b] + (bounds(p, b).len_q + kRows - 1) / kRows * p.heads_q;

  parallelFor(item_base[p.batch], 1, [&](int64_t begin, int64_t end) {
    std::vector<float> q(static_cast<size_t>(kRows) * D), acc(static_cast<size_t>(kRows) * D);
    std::vector<std::pair<int64_t, int64_t>> ranges;
    int b = 0;
    for (int64_t item = begin; item < end; ++item) {
      while (item_base[b + 1] <= item) ++b;
      const SeqBounds sb = bounds(p, b);
      const int64_t local = item - item_base[b];
      const int h = static_cast<int>(local % p.heads_q);
      const int64_t i0 = local / p.heads_q * kRows;
      const int rows = static_cast<int>(std::min<int64_t>(kRows, sb.len_q - i0));
      const int hk = h / group;
      const float slope = p.alibi_slopes ? p.alibi_slopes[h] : 0.0f;
      const int64_t offset = sb.len_k - sb.len_q;
      const float* kh = &kf[kv_base[b] + static_cast<int64_t>(hk) * sb.len_k * D];
      const float* vh = &vf[kv_base[b] + static_cast<int64_t>(hk) * sb.len_k * D];

      OnlineSoftmax sm[kRows];
      int64_t lo[kRows], hi[kRows];
      int64_t all_lo = sb.len_k, all_hi = 0;
      for (int r = 0; r < rows; ++r) {
        loadRow(p.q, rowOffset(p, p.q_batch_stride, p.q_row_stride, p.q_head_stride, b, sb.q_row0, i0 + r, h), p.dtype,
                D, &q[static_cast<size_t>(r) * D]);
        rules.visibleRange(i0 + r, offset, sb.len_k, &lo[r], &hi[r]);
        if (lo[r] < hi[r]) {
          all_lo = std::min(all_lo, lo[r]);
          all_hi = std::max(all_hi, hi[r]);
        }
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      // Key ranges the block visits: [all_lo, all_hi), or the part of it the mask lists; each row
      // then clips them to its own.
      ranges.clear();
      const int64_t mask_row = p.block_row_ptr ? p.blockMaskRow(b, h, static_cast<int>(i0 / kSparseBlock)) : 0;
      maskKeyRanges(p, mask_row, all_lo, all_hi, ranges);
      forEachChunk(ranges, [&](int64_t js, int64_t je) {
        attendChunk(q.data(), rows, lo, hi, kh + js * D, vh + js * D, ChunkDims::square(D), rules, slope, i0, offset, js, je,
                    sm, acc.data());
      });
      for (int r = 0; r < rows; ++r) {
        float* o = &acc[static_cast<size_t>(r) * D];
        sm[r].normalize(o, D);
        const int64_t i = i0 + r;
        storeRow(p.o, rowOffset(p, p.o_batch_stride, p.o_row_stride, p.o_head_stride, b, sb.q_row0, i, h), p.dtype, D, o);
        if (p.lse) {
          const int64_t idx = p.cu_seqlens_q ? static_cast<int64_t>(h) * p.total_q + sb.q_row0 + i
                                             : (static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen_q + i;
          p.lse[idx] = sm[r].lse();
        }
      }
    }
  });
}

}  // namespace attn::cpu
