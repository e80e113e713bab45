#include "page_topk.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "../common/error.h"
#include "element_io.h"
#include "parallel.h"

namespace attn::cpu {

void pageSummarize(const PageSummaryParams& p) {
  if (p.count <= 0) return;
  if (p.dtype != DType::F32 && p.dtype != DType::F16 && p.dtype != DType::BF16) throwRange("pageSummarize: unsupported dtype");
  const int D = p.head_dim;
  // One item per (page, kv head): the pages of one call are distinct, so no two items share a row.
  parallelFor(static_cast<int64_t>(p.count) * p.heads_kv, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(D)), mn(static_cast<size_t>(D)), mx(static_cast<size_t>(D));
    for (int64_t item = begin; item < end; ++item) {
      const int i = static_cast<int>(item / p.heads_kv);
      const int h = static_cast<int>(item % p.heads_kv);
      const int64_t page = p.block_table[static_cast<int64_t>(p.rows[i]) * p.block_table_stride + p.logical[i]];
      const int s0 = std::max(p.slot_begin[i], 0), s1 = std::min(p.slot_end[i], p.page_size);
      if (page < 0 || s1 <= s0) continue;
      const int64_t sum_off = page * p.sum_page_stride + static_cast<int64_t>(h) * D;
      if (s0 > 0) {
        loadRow(p.sum_min, sum_off, p.dtype, D, mn.data());
        loadRow(p.sum_max, sum_off, p.dtype, D, mx.data());
      } else {
        std::fill(mn.begin(), mn.end(), INFINITY);
        std::fill(mx.begin(), mx.end(), -INFINITY);
      }
      for (int s = s0; s < s1; ++s) {
        loadRow(p.k_pages, page * p.page_stride + h * p.page_head_stride + static_cast<int64_t>(s) * D, p.dtype, D, row.data());
        for (int c = 0; c < D; ++c) {
          mn[c] = std::min(mn[c], row[c]);
          mx[c] = std::max(mx[c], row[c]);
        }
      }
      // min/max of stored values are stored values: the round trip through the dtype is exact.
      storeRow(p.sum_min, sum_off, p.dtype, D, mn.data());
      storeRow(p.sum_max, sum_off, p.dtype, D, mx.data());
    }
  });
}

void pageTopK(const PageTopKParams& p) {
  if (p.batch <= 0) return;
  if (p.dtype != DType::F32 && p.dtype != DType::F16 && p.dtype != DType::BF16) throwRange("pageTopK: unsupported dtype");
  if (p.k < 1 || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) throwRange("pageTopK: bad k or heads");
  const int D = p.head_dim;
  const int group = p.heads_q / p.heads_kv;
  parallelFor(p.batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> q(static_cast<size_t>(p.heads_q) * D), mn(static_cast<size_t>(D)), mx(static_cast<size_t>(D));
    std::vector<uint32_t> key;
    std::vector<int> order;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t len = std::max(p.seq_lens[b], 0);
      const int n = static_cast<int>((len + p.page_size - 1) / p.page_size);
      const int64_t row = p.block_table_rows ? p.block_table_rows[b] : b;
      const int32_t* bt = p.block_table + row * p.block_table_stride;
      int32_t* out = p.out_table + b * p.k;
      std::fill(out, out + p.k, -1);
      if (n <= p.k) {
        std::copy(bt, bt + n, out);
        continue;
      }
      for (int h = 0; h < p.heads_q; ++h) loadRow(p.q, b * p.q_row_stride + h * p.q_head_stride, p.dtype, D, &q[static_cast<size_t>(h) * D]);
      // Candidates 1 .. n - 2 (page 0 and page n - 1 are always kept).
      key.assign(static_cast<size_t>(n), 0u);
      for (int pg = 1; pg + 1 < n; ++pg) {
        float score = 0.0f;
        for (int hk = 0; hk < p.heads_kv; ++hk) {
          const int64_t off = static_cast<int64_t>(bt[pg]) * p.sum_page_stride + static_cast<int64_t>(hk) * D;
          loadRow(p.sum_min, off, p.dtype, D, mn.data());
          loadRow(p.sum_max, off, p.dtype, D, mx.data());
          for (int g = 0; g < group; ++g) {
            const float* qh = &q[static_cast<size_t>(hk * group + g) * D];
            for (int c = 0; c < D; ++c) score += std::max(qh[c] * mn[c], qh[c] * mx[c]);
          }
        }
        key[static_cast<size_t>(pg)] = pageScoreKey(score);
      }
      order.resize(static_cast<size_t>(n - 2));
      std::iota(order.begin(), order.end(), 1);
      const int m = p.k - 2;
      std::partial_sort(order.begin(), order.begin() + m, order.end(), [&](int a, int c) {
        return key[static_cast<size_t>(a)] != key[static_cast<size_t>(c)] ? key[static_cast<size_t>(a)] > key[static_cast<size_t>(c)] : a < c;
      });
      std::sort(order.begin(), order.begin() + m);
      out[0] = bt[0];
      for (int j = 0; j < m; ++j) out[j + 1] = bt[order[static_cast<size_t>(j)]];
      out[p.k - 1] = bt[n - 1];
    }
  });
}

}  // namespace attn::cpu
