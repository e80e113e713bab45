#include "attention.h"

#include <algorithm>
#include <vector>

#include "dot.h"
#include "element_io.h"
#include "parallel.h"
#include "score_rules.h"

namespace attn::cpu {
namespace {

struct SeqBounds {
  int64_t q_row0, k_row0, len_q, len_k;
};

SeqBounds bounds(const AttnParams& p, int b) {
  if (p.cu_seqlens_q) {
    return {p.cu_seqlens_q[b], p.cu_seqlens_k[b], p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b],
            p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b]};
  }
  return {0, 0, p.seqlen_q, p.seqlen_k};
}

// Element offset of (sequence b, row r within it, head h) for a tensor with the given strides.
inline int64_t rowOffset(const AttnParams& p, int64_t batch_stride, int64_t row_stride, int64_t head_stride, int b,
                         int64_t row0, int64_t r, int h) {
  int64_t base = p.cu_seqlens_q ? 0 : b * batch_stride;
  return base + (row0 + r) * row_stride + h * head_stride;
}

// Keys [j0, j1) of one query row into its online softmax and accumulator. The hot loop of the
// dense CPU kernel, compiled twice on x86-64 Linux (AVX2 + FMA, and the baseline the package is
// built for) and picked once at load time: prebuilt binaries stay portable.
ATTN_CPU_MULTIVERSION
void attendKeys(const float* q, const float* kh, const float* vh, int D, const ScoreRules& rules, float slope,
                int64_t i, int64_t offset, int64_t j0, int64_t j1, OnlineSoftmax& sm, float* acc) {
  for (int64_t j = j0; j < j1; ++j) {
    const float* kj = kh + j * D;
    float pw;
    const float corr = sm.add(rules.score(dotF32(q, kj, D), slope, i, offset, j), &pw);
    const float* vj = vh + j * D;
    if (corr != 1.0f)
      for (int c = 0; c < D; ++c) acc[c] = acc[c] * corr + pw * vj[c];
    else
      for (int c = 0; c < D; ++c) acc[c] += pw * vj[c];
  }
}

}  // namespace

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

  // One work item per (sequence, query row, head) in varlen row order.
  std::vector<int64_t> q_base(p.batch + 1, 0);
  for (int b = 0; b < p.batch; ++b) q_base[b + 1] = q_base[b] + bounds(p, b).len_q;
  int64_t items = q_base[p.batch] * p.heads_q;

  parallelFor(items, 8, [&](int64_t begin, int64_t end) {
    std::vector<float> q(D), acc(D);
    int b = 0;
    for (int64_t item = begin; item < end; ++item) {
      int64_t row = item / p.heads_q;
      int h = static_cast<int>(item % p.heads_q);
      while (q_base[b + 1] <= row) ++b;
      while (q_base[b] > row) --b;
      SeqBounds sb = bounds(p, b);
      int64_t i = row - q_base[b];
      int hk = h / group;
      float slope = p.alibi_slopes ? p.alibi_slopes[h] : 0.0f;
      int64_t offset = sb.len_k - sb.len_q;

      loadRow(p.q, rowOffset(p, p.q_batch_stride, p.q_row_stride, p.q_head_stride, b, sb.q_row0, i, h), p.dtype, D,
              q.data());
      std::fill(acc.begin(), acc.end(), 0.0f);
      OnlineSoftmax sm;
      int64_t lo, hi;
      rules.visibleRange(i, offset, sb.len_k, &lo, &hi);
      const float* kh = &kf[kv_base[b] + static_cast<int64_t>(hk) * sb.len_k * D];
      const float* vh = &vf[kv_base[b] + static_cast<int64_t>(hk) * sb.len_k * D];
      auto visit = [&](int64_t j0, int64_t j1) {
        attendKeys(q.data(), kh, vh, D, rules, slope, i, offset, j0, j1, sm, acc.data());
      };
      if (p.block_row_ptr == nullptr) {
        visit(lo, hi);
      } else {
        // Block-sparse: only the listed key blocks of this row's query block, within [lo, hi).
        const int64_t r = p.blockMaskRow(b, h, static_cast<int>(i / kSparseBlock));
        const int64_t e0 = std::clamp<int64_t>(p.block_row_ptr[r], 0, p.block_mask_nnz);
        const int64_t e1 = std::clamp<int64_t>(p.block_row_ptr[r + 1], e0, p.block_mask_nnz);
        int64_t next = lo;  // keys below were visited: an unsorted list can never visit a key twice
        for (int64_t e = e0; e < e1; ++e) {
          const int64_t k0 = std::max<int64_t>(next, static_cast<int64_t>(p.block_col_idx[e]) * kSparseBlock);
          const int64_t k1 = std::min<int64_t>(hi, (static_cast<int64_t>(p.block_col_idx[e]) + 1) * kSparseBlock);
          if (k0 < k1) {
            visit(k0, k1);
            next = k1;
          }
        }
      }
      float inv = sm.sum > 0.0f ? 1.0f / sm.sum : 0.0f;
      for (int c = 0; c < D; ++c) acc[c] *= inv;
      storeRow(p.o, rowOffset(p, p.o_batch_stride, p.o_row_stride, p.o_head_stride, b, sb.q_row0, i, h), p.dtype, D,
               acc.data());
      if (p.lse) {
        int64_t idx = p.cu_seqlens_q ? static_cast<int64_t>(h) * p.total_q + sb.q_row0 + i
                                     : (static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen_q + i;
        p.lse[idx] = sm.lse();
      }
    }
  });
}

}  // namespace attn::cpu
