// MLA on the CPU: scores in float32 from the stored (dequantized) values, the dense kernel's chunked
// online softmax (attend_chunk.h), natural-log lse. Work is spread over the pool by new token for
// append and by (query row, share of the heads) for attention.
#include "mla_attention.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../common/error.h"
#include "../common/half.h"
#include "attend_chunk.h"
#include "element_io.h"
#include "parallel.h"
#include "query_sequences.h"

namespace attn::cpu {
namespace {

bool isFloating(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

void checkCache(const MlaCacheView& c, const char* what) {
  if (!isFloating(c.dtype) && c.dtype != DType::FP8E4M3)
    throwRange(std::string(what) + ": unsupported cache dtype " + dtypeName(c.dtype));
  if (!c.pages || !c.block_table) throwRange(std::string(what) + ": a required pointer is null");
  if (c.dtype == DType::FP8E4M3 && !c.scales) throwRange(std::string(what) + ": the fp8 cache needs its scales");
  if (c.page_size <= 0 || c.num_pages <= 0) throwRange(std::string(what) + ": page_size and num_pages must be positive");
}

// The pool index (in rows) of logical token t of the sequence whose table row is `bt`.
int64_t rowIndex(const MlaCacheView& c, const int32_t* bt, int64_t t) {
  const int64_t page = bt[t / c.page_size];
  if (page < 0 || page >= c.num_pages) throwRange("mla: block table entry out of range");
  return page * c.page_size + t % c.page_size;
}

// One cached row (576 floats), dequantized.
void loadCacheRow(const MlaCacheView& c, int64_t row, float* out) {
  if (c.dtype != DType::FP8E4M3) {
    loadRow(c.pages, row * kMlaRow, c.dtype, kMlaRow, out);
    return;
  }
  const auto& lut = fp8Table();
  const uint8_t* src = static_cast<const uint8_t*>(c.pages) + row * kMlaRow;
  const float s_lat = c.scales[row * 2], s_rope = c.scales[row * 2 + 1];
  for (int i = 0; i < kMlaLatent; ++i) out[i] = lut[src[i]] * s_lat;
  for (int i = kMlaLatent; i < kMlaRow; ++i) out[i] = lut[src[i]] * s_rope;
}

// Quantizes n floats with one scale (amax / 448); returns the scale.
float quantizeFp8(const float* x, int n, uint8_t* dst) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float inv = amax > 0.0f ? kFp8E4m3Max / amax : 0.0f;
  for (int i = 0; i < n; ++i) dst[i] = floatToFp8e4m3(x[i] * inv);
  return amax / kFp8E4m3Max;
}

}  // namespace

void mlaAppend(const MlaAppendParams& p) {
  if (p.total_new <= 0 || p.batch <= 0) return;
  checkCache(p.cache, "mlaAppend");
  if (!isFloating(p.in_dtype)) throwRange(std::string("mlaAppend: unsupported input dtype ") + dtypeName(p.in_dtype));
  if (p.cache.dtype != DType::FP8E4M3 && p.cache.dtype != p.in_dtype)
    throwRange("mlaAppend: the input dtype must equal the cache dtype");
  if (!p.latent || !p.cu_new || !p.start_pos) throwRange("mlaAppend: a required pointer is null");
  if (p.cu_new[0] != 0 || p.cu_new[p.batch] != p.total_new) throwRange("mlaAppend: cu_new must start at 0 and end at total_new");

  parallelFor(p.total_new, 16, [&](int64_t begin, int64_t end) {
    float row[kMlaRow];
    for (int64_t r = begin; r < end; ++r) {
      const int32_t* it = std::upper_bound(p.cu_new, p.cu_new + p.batch + 1, static_cast<int32_t>(r));
      const int b = static_cast<int>(it - p.cu_new) - 1;
      const int64_t pos = static_cast<int64_t>(p.start_pos[b]) + (r - p.cu_new[b]);
      if (pos < 0) throwRange("mlaAppend: negative position");
      const int64_t table_row = p.cache.block_table_rows ? p.cache.block_table_rows[b] : b;
      const int64_t dst = rowIndex(p.cache, p.cache.block_table + table_row * p.cache.block_table_stride, pos);
      loadRow(p.latent, r * p.latent_row_stride, p.in_dtype, p.rope ? kMlaLatent : kMlaRow, row);
      if (p.rope) loadRow(p.rope, r * p.rope_row_stride, p.in_dtype, kMlaRope, row + kMlaLatent);
      if (p.cache.dtype == DType::FP8E4M3) {
        uint8_t* d = static_cast<uint8_t*>(p.cache.pages) + dst * kMlaRow;
        p.cache.scales[dst * 2] = quantizeFp8(row, kMlaLatent, d);
        p.cache.scales[dst * 2 + 1] = quantizeFp8(row + kMlaLatent, kMlaRope, d + kMlaLatent);
      } else {
        storeRow(p.cache.pages, dst * kMlaRow, p.cache.dtype, kMlaRow, row);
      }
    }
  });
}

void mlaAttention(const MlaAttnParams& p) {
  if (p.batch <= 0 || p.total_q <= 0) return;
  checkCache(p.cache, "mlaAttention");
  if (!isFloating(p.dtype)) throwRange(std::string("mlaAttention: unsupported dtype ") + dtypeName(p.dtype));
  if (p.heads <= 0) throwRange("mlaAttention: heads must be positive");
  if (!p.q || !p.o || !p.seq_lens) throwRange("mlaAttention: a required pointer is null");
  if (p.cu_seqlens_q) {
    if (p.cu_seqlens_q[0] != 0 || p.cu_seqlens_q[p.batch] != p.total_q)
      throwRange("mlaAttention: cu_seqlens_q must start at 0 and end at total_q");
  } else if (p.total_q != p.batch) {
    throwRange("mlaAttention: without cu_seqlens_q, total_q must equal batch");
  }
  const std::vector<int> row_seq = querySequences(p.cu_seqlens_q, p.batch, p.total_q, "mlaAttention");

  // Work items per (query row, share of the heads): every head reads the same latent rows, so the
  // heads of a share reuse each row's load and conversion. Shares are as large as keeps every thread
  // busy (decode has few rows). The heads take the keys in the dense kernel's 16-key chunks
  // (attend_chunk.h) with the latent part of each key row as its value: 14-21 -> 40-106 GFLOP/s
  // on two cores (docs/perf.md, session 14).
  const int shares = partsForThreads(p.total_q, p.heads);
  const int per_share = p.heads / shares;
  const int64_t items = static_cast<int64_t>(p.total_q) * shares;
  const ScoreRules rules{p.scale, p.softcap, -1, -1};
  const ChunkDims dims{kMlaRow, kMlaLatent, kMlaRow};
  parallelFor(items, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> q(static_cast<size_t>(kRows) * kMlaRow), acc(static_cast<size_t>(kRows) * kMlaLatent);
    std::vector<float> kv(static_cast<size_t>(kChunk) * kMlaRow);
    for (int64_t item = begin; item < end; ++item) {
      const int row = static_cast<int>(item / shares);
      const int b = row_seq[static_cast<size_t>(row)];
      const int r0 = p.cu_seqlens_q ? p.cu_seqlens_q[b] : b;
      const int r1 = p.cu_seqlens_q ? p.cu_seqlens_q[b + 1] : b + 1;
      const int64_t len_k = std::max(p.seq_lens[b], 0);
      const int64_t pos = len_k - (r1 - r0) + (row - r0);  // bottom-right aligned
      const int64_t hi = p.causal ? std::min<int64_t>(len_k, std::max<int64_t>(pos + 1, 0)) : len_k;
      const int64_t table_row = p.cache.block_table_rows ? p.cache.block_table_rows[b] : b;
      const int32_t* bt = p.cache.block_table + table_row * p.cache.block_table_stride;
      // The share's heads in groups of at most kRows (attendChunkRows' limit).
      for (int h0 = static_cast<int>(item % shares) * per_share, h_end = h0 + per_share; h0 < h_end; h0 += kRows) {
        const int n = std::min(kRows, h_end - h0);
        for (int g = 0; g < n; ++g)
          loadRow(p.q, row * p.q_row_stride + (h0 + g) * p.q_head_stride, p.dtype, kMlaRow, &q[static_cast<size_t>(g) * kMlaRow]);
        std::fill(acc.begin(), acc.end(), 0.0f);
        OnlineSoftmax sm[kRows];
        for (int64_t js = 0; js < hi; js += kChunk) {
          const int64_t je = std::min<int64_t>(hi, js + kChunk);
          for (int64_t j = js; j < je; ++j)
            loadCacheRow(p.cache, rowIndex(p.cache, bt, j), &kv[static_cast<size_t>(j - js) * kMlaRow]);
          attendChunkRows(q.data(), n, kv.data(), kv.data(), dims, rules, 0.0f, pos, 0, js, static_cast<int>(je - js), sm,
                          acc.data());
        }
        for (int g = 0; g < n; ++g) {
          float* o = &acc[static_cast<size_t>(g) * kMlaLatent];
          sm[g].normalize(o, kMlaLatent);
          const int h = h0 + g;
          storeRow(p.o, row * p.o_row_stride + h * p.o_head_stride, p.dtype, kMlaLatent, o);
          if (p.lse) p.lse[static_cast<int64_t>(row) * p.heads + h] = sm[g].lse();
        }
      }
    }
  });
}

}  // namespace attn::cpu
