// Paged KV cache operations on the CPU: the reference for csrc/cuda/paged.
//
// Scores in float32 from the stored (for 8-bit caches dequantized) values, K/V taken in the dense
// kernel's 16-key chunks with an online softmax (attend_chunk.h); lse is natural-log. A
// block-sparse mask only narrows the chunks visited (the same arithmetic in the same key order, so
// a mask listing every block gives the unmasked result bit for bit).
// Work is spread over the pool by (query rows, head) for attention, by new-token row for append
// and by (pair, plane) for the page copy.
#include "paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../common/attention_params.h"
#include "../common/error.h"
#include "../common/half.h"
#include "../common/quant.h"
#include "attend_chunk.h"
#include "element_io.h"
#include "mask_ranges.h"
#include "parallel.h"
#include "query_sequences.h"
#include "score_rules.h"

namespace attn::cpu {
namespace {

float loadElem(DType t, const void* base, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::F16: return f16ToFloat(static_cast<const uint16_t*>(base)[i]);
    case DType::BF16: return bf16ToFloat(static_cast<const uint16_t*>(base)[i]);
    default: break;
  }
  return 0.0f;
}

// One 8-bit cache element as float (unscaled).
float loadQuant(DType t, const void* base, int64_t i) {
  return t == DType::FP8E4M3 ? fp8Table()[static_cast<const uint8_t*>(base)[i]]
                             : static_cast<float>(static_cast<const int8_t*>(base)[i]);
}

// Quantizes one row of n floats to the cache's 8-bit type with one scale (csrc/common/quant.h).
float storeQuantRow(DType t, const float* x, int n, uint8_t* dst) {
  const bool fp8 = t == DType::FP8E4M3;
  float amax = 0.0f;
  for (int c = 0; c < n; ++c) amax = std::fmax(amax, std::fabs(x[c]));
  const float target = kvQuantTarget(fp8);
  const float inv = quantInverse(target, amax);
  for (int c = 0; c < n; ++c)
    dst[c] = fp8 ? floatToFp8e4m3(x[c] * inv) : static_cast<uint8_t>(quantizeInt8(x[c], inv));
  return quantScale(target, amax);
}

// Where new row r of an append lands: its page and the slot in it. Sequence b owns new rows
// [cu_new[b], cu_new[b+1]): the last b with cu_new[b] <= r.
std::pair<int64_t, int64_t> appendSlot(const PagedAppendParams& p, int64_t r) {
  const int32_t* it = std::upper_bound(p.cu_new, p.cu_new + p.batch + 1, static_cast<int32_t>(r));
  const int b = static_cast<int>(it - p.cu_new) - 1;
  const int64_t pos = static_cast<int64_t>(p.start_pos[b]) + (r - p.cu_new[b]);
  if (pos < 0) throwRange("pagedAppend: negative position");
  const int64_t row = p.block_table_rows != nullptr ? p.block_table_rows[b] : b;
  const int64_t page = p.block_table[row * p.block_table_stride + pos / p.page_size];
  if (page < 0) throwRange("pagedAppend: negative page index in block_table");
  return {page, pos % p.page_size};
}

// The quantized append: smoothing vector (first call of a layer), then one scale per row and head.
void pagedAppendQuant(const PagedAppendParams& p) {
  if (!p.k_scales || !p.v_scales || !p.k_smooth || !p.k_chan || !p.v_chan)
    throwRange("pagedAppend: a quantized cache needs scales, k_smooth, k_chan and v_chan");
  const int D = p.head_dim;
  if (p.init_smoothing) {
    for (int h = 0; h < p.heads_kv; ++h) {
      std::vector<double> sum(static_cast<size_t>(D), 0.0);
      for (int64_t r = 0; r < p.total_new; ++r)
        for (int c = 0; c < D; ++c) sum[c] += loadElem(p.dtype, p.k, r * p.k_row_stride + h * p.k_head_stride + c);
      for (int c = 0; c < D; ++c) p.k_smooth[h * D + c] = static_cast<float>(sum[c] / static_cast<double>(p.total_new));
      std::vector<float> kmax(static_cast<size_t>(D), 0.0f), vmax(static_cast<size_t>(D), 0.0f);
      for (int64_t r = 0; r < p.total_new; ++r)
        for (int c = 0; c < D; ++c) {
          kmax[c] = std::fmax(kmax[c], std::fabs(loadElem(p.dtype, p.k, r * p.k_row_stride + h * p.k_head_stride + c) - p.k_smooth[h * D + c]));
          vmax[c] = std::fmax(vmax[c], std::fabs(loadElem(p.dtype, p.v, r * p.v_row_stride + h * p.v_head_stride + c)));
        }
      for (int c = 0; c < D; ++c) {
        p.k_chan[h * D + c] = channelScale(p.cache_dtype, kmax[c]);
        p.v_chan[h * D + c] = channelScale(p.cache_dtype, vmax[c]);
      }
    }
  }
  uint8_t* kp = static_cast<uint8_t*>(p.k_pages);
  uint8_t* vp = static_cast<uint8_t*>(p.v_pages);
  parallelFor(p.total_new, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> x(static_cast<size_t>(D));
    for (int64_t r = begin; r < end; ++r) {
      const auto [page, slot] = appendSlot(p, r);
      for (int h = 0; h < p.heads_kv; ++h) {
        const int64_t dst = page * p.page_stride + h * p.page_head_stride + slot * D;
        const int64_t sidx = page * p.scale_page_stride + h * p.scale_head_stride + slot;
        for (int c = 0; c < D; ++c)
          x[c] = (loadElem(p.dtype, p.k, r * p.k_row_stride + h * p.k_head_stride + c) - p.k_smooth[h * D + c]) / p.k_chan[h * D + c];
        p.k_scales[sidx] = storeQuantRow(p.cache_dtype, x.data(), D, kp + dst);
        for (int c = 0; c < D; ++c) x[c] = loadElem(p.dtype, p.v, r * p.v_row_stride + h * p.v_head_stride + c) / p.v_chan[h * D + c];
        p.v_scales[sidx] = storeQuantRow(p.cache_dtype, x.data(), D, vp + dst);
      }
    }
  });
}

void checkDType(DType t, const char* what) {
  if (t != DType::F32 && t != DType::F16 && t != DType::BF16)
    throwRange(std::string(what) + ": unsupported dtype " + dtypeName(t) + " (f32, f16 or bf16)");
}

}  // namespace

void pagedAppend(const PagedAppendParams& p) {
  checkDType(p.dtype, "pagedAppend");
  if (p.total_new <= 0 || p.batch <= 0) return;
  if (p.heads_kv <= 0 || p.head_dim <= 0 || p.page_size <= 0)
    throwRange("pagedAppend: heads_kv, head_dim and page_size must be positive");
  if (!p.k || !p.v || !p.k_pages || !p.v_pages || !p.block_table || !p.cu_new || !p.start_pos)
    throwRange("pagedAppend: a required pointer is null");
  if (p.cu_new[0] != 0 || p.cu_new[p.batch] != p.total_new)
    throwRange("pagedAppend: cu_new must start at 0 and end at total_new");
  if (p.quantized()) {
    pagedAppendQuant(p);
    return;
  }

  const size_t esz = dtypeSize(p.dtype);
  const size_t row_bytes = esz * static_cast<size_t>(p.head_dim);
  const char* k = static_cast<const char*>(p.k);
  const char* v = static_cast<const char*>(p.v);
  char* kp = static_cast<char*>(p.k_pages);
  char* vp = static_cast<char*>(p.v_pages);

  parallelFor(p.total_new, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const auto [page, slot] = appendSlot(p, r);
      for (int h = 0; h < p.heads_kv; ++h) {
        const int64_t dst = page * p.page_stride + h * p.page_head_stride + slot * p.head_dim;
        std::memcpy(kp + dst * esz, k + (r * p.k_row_stride + h * p.k_head_stride) * esz, row_bytes);
        std::memcpy(vp + dst * esz, v + (r * p.v_row_stride + h * p.v_head_stride) * esz, row_bytes);
      }
    }
  });
}

void pagedAttention(const PagedAttnParams& p) {
  checkDType(p.dtype, "pagedAttention");
  if (p.batch <= 0 || p.total_q <= 0) return;
  if (p.heads_q <= 0 || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0)
    throwRange("pagedAttention: heads_q must be a positive multiple of heads_kv");
  if (p.head_dim <= 0 || p.page_size <= 0) throwRange("pagedAttention: head_dim and page_size must be positive");
  if (!p.q || !p.o || !p.k_pages || !p.v_pages || !p.block_table || !p.seq_lens)
    throwRange("pagedAttention: a required pointer is null");
  if (p.cu_seqlens_q) {
    if (p.cu_seqlens_q[0] != 0 || p.cu_seqlens_q[p.batch] != p.total_q)
      throwRange("pagedAttention: cu_seqlens_q must start at 0 and end at total_q");
  } else if (p.total_q != p.batch) {
    throwRange("pagedAttention: without cu_seqlens_q, total_q must equal batch (one query per sequence)");
  }
  if (p.block_row_ptr && (!p.block_col_idx || p.quantized()))
    throwRange("pagedAttention: a block mask needs block_col_idx and a 16/32-bit cache");

  const int D = p.head_dim;
  const int group = p.heads_q / p.heads_kv;
  const ScoreRules rules{p.scale, p.softcap, p.window_left, p.causal ? 0 : p.window_right};  // causal: window_right = 0
  // Sequence b's block-table row, and the pool offset of key j of kv head kvh through it.
  const auto tableOf = [&](int b) {
    return p.block_table + (p.block_table_rows != nullptr ? p.block_table_rows[b] : b) * p.block_table_stride;
  };
  const auto keyOffset = [&](const int32_t* bt, int kvh, int64_t j) {
    return static_cast<int64_t>(bt[j / p.page_size]) * p.page_stride + kvh * p.page_head_stride + (j % p.page_size) * D;
  };

  // Keys [js, je) of kv head kvh as f32 rows into kc / vc: 16/32-bit values converted, 8-bit ones
  // dequantized (per-token scale, per-channel K / V factors, K's smoothing vector added back).
  const auto gatherChunk = [&](const int32_t* bt, int kvh, int64_t js, int64_t je, float* kc, float* vc) {
    for (int64_t j = js; j < je; ++j) {
      const int64_t at = keyOffset(bt, kvh, j);
      float* kd = kc + (j - js) * D;
      float* vd = vc + (j - js) * D;
      if (!p.quantized()) {
        loadRow(p.k_pages, at, p.dtype, D, kd);
        loadRow(p.v_pages, at, p.dtype, D, vd);
        continue;
      }
      const int64_t si = bt[j / p.page_size] * p.scale_page_stride + kvh * p.scale_head_stride + j % p.page_size;
      const float ks = p.k_scales[si], vs = p.v_scales[si];
      const float *k_chan = p.k_chan + kvh * D, *v_chan = p.v_chan + kvh * D, *k_smooth = p.k_smooth + kvh * D;
      for (int c = 0; c < D; ++c) {
        kd[c] = loadQuant(p.cache_dtype, p.k_pages, at + c) * ks * k_chan[c] + k_smooth[c];
        vd[c] = loadQuant(p.cache_dtype, p.v_pages, at + c) * vs * v_chan[c];
      }
    }
  };

  const std::vector<int> row_seq = querySequences(p.cu_seqlens_q, p.batch, p.total_q, "pagedAttention");

  // Prefill: a sequence with at least kMinBlockRows query rows goes as the dense kernel does
  // (attend_chunk.h): work items of kRows of its query rows and one head (within one block-sparse
  // mask row), which take each 16-key chunk of K/V, gathered (or dequantized) from its pages, in
  // turn (17 -> 68 GFLOP/s at 512 rows over 2k keys, d128, 2 cores; docs/perf.md, session 13).
  constexpr int kMinBlockRows = 16;
  struct RowBlock {
    int b, h, i0;
  };
  std::vector<RowBlock> blocks;
  std::vector<int> single_rows;  // the other rows, one work item per (row, kv head, share) below
  for (int b = 0; b < p.batch; ++b) {
    const int r0 = p.cu_seqlens_q ? p.cu_seqlens_q[b] : b;
    const int r1 = p.cu_seqlens_q ? p.cu_seqlens_q[b + 1] : b + 1;
    if (r1 - r0 >= kMinBlockRows) {
      for (int h = 0; h < p.heads_q; ++h)
        for (int i0 = 0; i0 < r1 - r0; i0 += kRows) blocks.push_back({b, h, i0});
    } else {
      for (int r = r0; r < r1; ++r) single_rows.push_back(r);
    }
  }
  const auto prefillBlock = [&](const RowBlock& blk, std::vector<float>& q, std::vector<float>& acc, std::vector<float>& kc,
                                std::vector<float>& vc, std::vector<std::pair<int64_t, int64_t>>& ranges) {
    const int r0 = p.cu_seqlens_q ? p.cu_seqlens_q[blk.b] : blk.b;
    const int64_t nq = (p.cu_seqlens_q ? p.cu_seqlens_q[blk.b + 1] : blk.b + 1) - r0;
    const int64_t len_k = p.seq_lens[blk.b];
    const int64_t offset = len_k - nq;  // bottom-right aligned
    const int rows = static_cast<int>(std::min<int64_t>(kRows, nq - blk.i0));
    const int kvh = blk.h / group;
    const float slope = p.alibi_slopes ? p.alibi_slopes[blk.h] : 0.0f;
    const int32_t* bt = tableOf(blk.b);
    OnlineSoftmax sm[kRows];
    int64_t lo[kRows], hi[kRows];
    int64_t all_lo = len_k, all_hi = 0;
    for (int r = 0; r < rows; ++r) {
      loadRow(p.q, (r0 + blk.i0 + r) * p.q_row_stride + blk.h * p.q_head_stride, p.dtype, D, &q[static_cast<size_t>(r) * D]);
      rules.visibleRange(blk.i0 + r, offset, len_k, &lo[r], &hi[r]);
      if (lo[r] < hi[r]) all_lo = std::min(all_lo, lo[r]), all_hi = std::max(all_hi, hi[r]);
    }
    std::fill(acc.begin(), acc.end(), 0.0f);
    ranges.clear();
    const int64_t mask_row = p.block_row_ptr ? p.blockMaskRow(blk.b, blk.h, blk.i0 / kSparseBlock) : 0;
    maskKeyRanges(p, mask_row, all_lo, all_hi, ranges);
    forEachChunk(ranges, [&](int64_t js, int64_t je) {
      gatherChunk(bt, kvh, js, je, kc.data(), vc.data());
      attendChunk(q.data(), rows, lo, hi, kc.data(), vc.data(), ChunkDims::square(D), rules, slope, blk.i0, offset, js, je,
                  sm, acc.data());
    });
    for (int r = 0; r < rows; ++r) {
      float* o = &acc[static_cast<size_t>(r) * D];
      sm[r].normalize(o, D);
      const int64_t row = r0 + blk.i0 + r;
      storeRow(p.o, row * p.o_row_stride + blk.h * p.o_head_stride, p.dtype, D, o);
      if (p.lse) p.lse[row * p.heads_q + blk.h] = sm[r].lse();
    }
  };

  // Every other row (decode, short runs): one work item per (query row, kv head, share of its
  // group's query heads); the heads of a share reuse each K and V row load and its conversion. Shares are as large as keeps every thread busy (a batch-1 decode has few rows);
  // with a block mask the heads' key lists differ, so each head goes alone.
  const int64_t pairs = static_cast<int64_t>(single_rows.size()) * p.heads_kv;
  const int shares = pairs > 0 ? partsForThreads(pairs, group) : 1;
  const int per_share = group / shares;
  const int64_t n_blocks = static_cast<int64_t>(blocks.size());
  const int64_t items = n_blocks + pairs * shares;
  parallelFor(items, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> q(static_cast<size_t>(kRows) * D), acc(static_cast<size_t>(kRows) * D);
    std::vector<float> kc(static_cast<size_t>(kChunk) * D), vc(static_cast<size_t>(kChunk) * D);  // a gathered chunk
    std::vector<std::pair<int64_t, int64_t>> ranges;  // visible keys: ascending half-open ranges
    for (int64_t item = begin; item < end; ++item) {
      if (item < n_blocks) {
        prefillBlock(blocks[static_cast<size_t>(item)], q, acc, kc, vc, ranges);
        continue;
      }
      const int64_t single = item - n_blocks;
      const int row = single_rows[static_cast<size_t>(single / (static_cast<int64_t>(p.heads_kv) * shares))];
      const int kvh = static_cast<int>(single / shares % p.heads_kv);
      const int h_first = kvh * group + static_cast<int>(single % shares) * per_share;
      const int b = row_seq[static_cast<size_t>(row)];
      const int r0 = p.cu_seqlens_q ? p.cu_seqlens_q[b] : b;
      const int r1 = p.cu_seqlens_q ? p.cu_seqlens_q[b + 1] : b + 1;
      const int64_t len_k = p.seq_lens[b];
      const int64_t nq = r1 - r0;
      const int64_t i = row - r0, offset = len_k - nq;  // bottom-right aligned
      int64_t lo, hi;
      rules.visibleRange(i, offset, len_k, &lo, &hi);
      const int32_t* bt = tableOf(b);

      // Query heads [h0, h0 + n) (one slope: no ALiBi, or n = 1) take the keys in the chunks of the
      // prefill path, the heads together through attendChunkRows: one load (and conversion or
      // dequantization) of each K and V row for all of them, scores two heads x four keys per pass,
      // no copy of an f32 chunk (a kChunk-aligned chunk lies in one page when the page size is a
      // multiple of kChunk).
      // 1.2-2.2x at 1-8 x 2k-8k, 32 / 8 heads, d128, f32 / bf16, 2 cores (docs/perf.md, session 14).
      auto attendChunks = [&](int h0, int n) {
        ranges.clear();
        const int64_t mask_row = p.block_row_ptr ? p.blockMaskRow(b, h0, static_cast<int>((row - r0) / kSparseBlock)) : 0;
        maskKeyRanges(p, mask_row, lo, hi, ranges);
        const float slope = p.alibi_slopes ? p.alibi_slopes[h0] : 0.0f;
        OnlineSoftmax sm[kRows];
        for (int g = 0; g < n; ++g) loadRow(p.q, row * p.q_row_stride + (h0 + g) * p.q_head_stride, p.dtype, D, &q[g * D]);
        std::fill(acc.begin(), acc.end(), 0.0f);  // all of it: n * D here trips GCC -Wstringop-overflow
        const bool direct = !p.quantized() && p.dtype == DType::F32 && p.page_size % kChunk == 0;
        forEachChunk(ranges, [&](int64_t js, int64_t je) {
          const float *kp = kc.data(), *vp = vc.data();
          if (direct) {
            kp = static_cast<const float*>(p.k_pages) + keyOffset(bt, kvh, js);
            vp = static_cast<const float*>(p.v_pages) + keyOffset(bt, kvh, js);
          } else {
            gatherChunk(bt, kvh, js, je, kc.data(), vc.data());
          }
          attendChunkRows(q.data(), n, kp, vp, ChunkDims::square(D), rules, slope, i, offset, js, static_cast<int>(je - js), sm,
                          acc.data(), direct);
        });
        for (int g = 0; g < n; ++g) {
          float* o = &acc[static_cast<size_t>(g) * D];
          sm[g].normalize(o, D);
          storeRow(p.o, row * p.o_row_stride + (h0 + g) * p.o_head_stride, p.dtype, D, o);
          if (p.lse) p.lse[static_cast<int64_t>(row) * p.heads_q + h0 + g] = sm[g].lse();
        }
      };

      if (p.block_row_ptr == nullptr && p.alibi_slopes == nullptr) {
        // The heads together where they share the keys and the score rule; otherwise one by one.
        for (int g = 0; g < per_share; g += kRows) attendChunks(h_first + g, std::min(kRows, per_share - g));
      } else {
        for (int g = 0; g < per_share; ++g) attendChunks(h_first + g, 1);
      }
    }
  });
}

void copyPages(const PageCopyParams& p) {
  if (p.count <= 0 || p.planes <= 0 || p.page_bytes <= 0) return;
  if (!p.pool || !p.src || !p.dst) throwRange("copyPages: a required pointer is null");
  if (p.plane_stride_bytes < p.page_bytes) throwRange("copyPages: plane_stride_bytes is smaller than page_bytes");
  const int64_t num_pages = p.plane_stride_bytes / p.page_bytes;
  for (int i = 0; i < p.count; ++i) {
    if (p.src[i] < 0 || p.src[i] >= num_pages || p.dst[i] < 0 || p.dst[i] >= num_pages)
      throwRange("copyPages: page index out of range [0, " + std::to_string(num_pages) + ")");
  }
  char* pool = static_cast<char*>(p.pool);
  const int64_t items = static_cast<int64_t>(p.count) * p.planes;
  parallelFor(items, 8, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t i = item / p.planes;
      const int64_t plane = item % p.planes;
      char* base = pool + plane * p.plane_stride_bytes;
      std::memmove(base + p.dst[i] * p.page_bytes, base + p.src[i] * p.page_bytes, static_cast<size_t>(p.page_bytes));
    }
  });
}

}  // namespace attn::cpu
