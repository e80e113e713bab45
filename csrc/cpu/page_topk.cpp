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
  const int D = p.head_dim, R = p.sum_dim;
  if (R < 1 || R > D || (!p.channels && R != D)) throwRange("pageSummarize: bad summary channels");
  // One item per (page, kv head): the pages of one call are distinct, so no two items share a row.
  parallelFor(static_cast<int64_t>(p.count) * p.heads_kv, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(D)), mn(static_cast<size_t>(R)), mx(static_cast<size_t>(R));
    for (int64_t item = begin; item < end; ++item) {
      const int i = static_cast<int>(item / p.heads_kv);
      const int h = static_cast<int>(item % p.heads_kv);
      const int64_t page = p.block_table[static_cast<int64_t>(p.rows[i]) * p.block_table_stride + p.logical[i]];
      const int s0 = std::max(p.slot_begin[i], 0), s1 = std::min(p.slot_end[i], p.page_size);
      if (page < 0 || s1 <= s0) continue;
      const int64_t sum_off = page * p.sum_page_stride + static_cast<int64_t>(h) * R;
      const int32_t* ch = p.channels ? p.channels + static_cast<int64_t>(h) * R : nullptr;
      if (s0 > 0) {
        loadRow(p.sum_min, sum_off, p.dtype, R, mn.data());
        loadRow(p.sum_max, sum_off, p.dtype, R, mx.data());
      } else {
        std::fill(mn.begin(), mn.end(), INFINITY);
        std::fill(mx.begin(), mx.end(), -INFINITY);
      }
      for (int s = s0; s < s1; ++s) {
        loadRow(p.k_pages, page * p.page_stride + h * p.page_head_stride + static_cast<int64_t>(s) * D, p.dtype, D, row.data());
        for (int j = 0; j < R; ++j) {
          const float x = row[ch ? ch[j] : j];
          mn[j] = std::min(mn[j], x);
          mx[j] = std::max(mx[j], x);
        }
      }
      // min/max of stored values are stored values: the round trip through the dtype is exact.
      storeRow(p.sum_min, sum_off, p.dtype, R, mn.data());
      storeRow(p.sum_max, sum_off, p.dtype, R, mx.data());
    }
  });
}

void pageTopK(const PageTopKParams& p) {
  if (p.batch <= 0) return;
  if (p.dtype != DType::F32 && p.dtype != DType::F16 && p.dtype != DType::BF16) throwRange("pageTopK: unsupported dtype");
  if (p.k < 1 || (p.k < 2 && p.max_pages > p.k) || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) throwRange("pageTopK: bad k or heads");
  const int D = p.head_dim, R = p.sum_dim;
  if (R < 1 || R > D || (!p.channels && R != D)) throwRange("pageTopK: bad summary channels");
  const int group = p.heads_q / p.heads_kv;
  const int64_t E = static_cast<int64_t>(p.heads_kv) * R;  // summary elements per page and plane
  parallelFor(p.batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> q(static_cast<size_t>(p.heads_q) * D), pos(static_cast<size_t>(E)), neg(static_cast<size_t>(E));
    std::vector<float> mn(static_cast<size_t>(E)), mx(static_cast<size_t>(E));
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
      // P / N: the group's positive and negative query parts at each summary channel (g in order).
      for (int64_t e = 0; e < E; ++e) {
        const int hk = static_cast<int>(e / R), j = static_cast<int>(e % R);
        const int c = p.channels ? p.channels[e] : j;
        float pp = 0.0f, nn = 0.0f;
        for (int g = 0; g < group; ++g) {
          const float x = q[static_cast<size_t>(hk * group + g) * D + c];
          pp += std::max(x, 0.0f);
          nn += std::min(x, 0.0f);
        }
        pos[static_cast<size_t>(e)] = pp;
        neg[static_cast<size_t>(e)] = nn;
      }
      // Candidates 1 .. n - 2 (page 0 and page n - 1 are always kept).
      key.assign(static_cast<size_t>(n), 0u);
      for (int pg = 1; pg + 1 < n; ++pg) {
        const int64_t off = static_cast<int64_t>(bt[pg]) * p.sum_page_stride;
        loadRow(p.sum_min, off, p.dtype, static_cast<int>(E), mn.data());
        loadRow(p.sum_max, off, p.dtype, static_cast<int>(E), mx.data());
        float score = 0.0f;
        for (size_t e = 0; e < static_cast<size_t>(E); ++e) score += mx[e] * pos[e] + mn[e] * neg[e];
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

void pageChooseChannels(const PageChannelParams& p) {
  if (p.tokens <= 0 || p.heads_kv <= 0) return;
  if (p.dtype != DType::F32 && p.dtype != DType::F16 && p.dtype != DType::BF16) throwRange("pageChooseChannels: unsupported dtype");
  const int D = p.head_dim, R = p.count;
  if (R < 1 || R > D) throwRange("pageChooseChannels: bad channel count");
  const int chunks = (p.tokens + kChannelChunk - 1) / kChannelChunk;
  parallelFor(p.heads_kv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(D));
    std::vector<double> part(static_cast<size_t>(D)), total(static_cast<size_t>(D));
    for (int64_t h = begin; h < end; ++h) {
      // The fixed summation order of PageChannelParams (the CUDA kernels' order).
      std::fill(total.begin(), total.end(), 0.0);
      for (int ch = 0; ch < chunks; ++ch) {
        std::fill(part.begin(), part.end(), 0.0);
        const int t1 = std::min(p.tokens, (ch + 1) * kChannelChunk);
        for (int t = ch * kChannelChunk; t < t1; ++t) {
          loadRow(p.k, t * p.k_row_stride + h * p.k_head_stride, p.dtype, D, row.data());
          for (int c = 0; c < D; ++c) part[static_cast<size_t>(c)] += std::fabs(static_cast<double>(row[static_cast<size_t>(c)]));
        }
        for (int c = 0; c < D; ++c) total[static_cast<size_t>(c)] += part[static_cast<size_t>(c)];
      }
      int32_t* out = p.out + h * R;
      int written = 0;
      for (int c = 0; c < D; ++c) {  // ascending: channel c is kept iff fewer than R channels rank above it
        const double kc = channelKey(total[static_cast<size_t>(c)]);
        int rank = 0;
        for (int c2 = 0; c2 < D; ++c2) {
          const double k2 = channelKey(total[static_cast<size_t>(c2)]);
          rank += (k2 > kc || (k2 == kc && c2 < c)) ? 1 : 0;
        }
        if (rank < R) out[written++] = c;
      }
    }
  });
}

}  // namespace attn::cpu
