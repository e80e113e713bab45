#include "attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dense_sequences.h"
#include "dot.h"
#include "element_io.h"
#include "mask_ranges.h"
#include "parallel.h"
#include "score_rules.h"

namespace attn::cpu {
namespace {

// Keys [j0, j1) of one query row into its online softmax and accumulator, kChunk keys at a time:
// the chunk's scores (four keys per pass over q), one max and at most one rescale of the
// accumulator per chunk, then the weighted V rows four at a time (one pass over acc). A chunk whose
// scores are all -inf weighs 0, as on the GPU; a NaN score makes the row NaN. Rows that see only
// part of a chunk take this path (attendChunkRows takes the others). Like it, compiled twice on
// x86-64 Linux (AVX2 + FMA, and the baseline the package is built for) and picked once at load
// time: prebuilt binaries stay portable.
constexpr int kChunk = 16;

ATTN_CPU_MULTIVERSION
void attendKeys(const float* q, const float* kh, const float* vh, int D, const ScoreRules& rules, float slope,
                int64_t i, int64_t offset, int64_t j0, int64_t j1, OnlineSoftmax& sm, float* acc) {
  float s[kChunk];
  for (int64_t jb = j0; jb < j1; jb += kChunk) {
    const int n = static_cast<int>(std::min<int64_t>(kChunk, j1 - jb));
    const float* k = kh + jb * D;
    int t = 0;
    for (; t + 4 <= n; t += 4) {
      float d4[4];
      dot4F32(q, k + t * D, k + (t + 1) * D, k + (t + 2) * D, k + (t + 3) * D, D, d4);
      for (int u = 0; u < 4; ++u) s[t + u] = d4[u];
    }
    for (; t < n; ++t) s[t] = dotF32(q, k + t * D, D);
    float mx = -INFINITY;
    for (t = 0; t < n; ++t) {
      s[t] = rules.score(s[t], slope, i, offset, jb + t);
      mx = s[t] > mx || s[t] != s[t] ? s[t] : mx;  // a NaN stays: the row's result is NaN
    }
    if (mx == -INFINITY) continue;
    if (mx > sm.max) {
      const float corr = sm.max == -INFINITY ? 0.0f : std::exp(sm.max - mx);
      sm.sum *= corr;
      for (int c = 0; c < D; ++c) acc[c] *= corr;
      sm.max = mx;
    }
    for (t = 0; t < n; ++t) {
      s[t] = std::exp(s[t] - sm.max);
      sm.sum += s[t];
    }
    const float* v = vh + jb * D;
    for (t = 0; t + 4 <= n; t += 4) {
      const float p0 = s[t], p1 = s[t + 1], p2 = s[t + 2], p3 = s[t + 3];
      const float *v0 = v + t * D, *v1 = v0 + D, *v2 = v1 + D, *v3 = v2 + D;
      for (int c = 0; c < D; ++c) acc[c] += (p0 * v0[c] + p1 * v1[c]) + (p2 * v2[c] + p3 * v3[c]);
    }
    for (; t < n; ++t) {
      const float* vj = v + t * D;
      for (int c = 0; c < D; ++c) acc[c] += s[t] * vj[c];
    }
  }
}

// Rows per work item of attentionForward, which share each chunk of K/V.
constexpr int kRows = 64;

#if defined(__GNUC__)
typedef float V8 __attribute__((vector_size(32)));  // GCC/Clang vector extension: one AVX register
inline float sum8(const V8& v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }
#endif

// Rows [0, rows) of a row block (q: [rows][D], acc: [rows][D]) that all see every key of
// [js, js + n), n <= kChunk: attendKeys' steps for all of them at once, so each K and V load
// serves several rows (scores two rows x four keys per pass, the weighted V rows four rows x 16
// channels at a time, their accumulators in registers across the chunk). Head dims that are not a
// multiple of 16 take attendKeys row by row.
ATTN_CPU_MULTIVERSION
void attendChunkRows(const float* q, int rows, const float* kh, const float* vh, int D, const ScoreRules& rules,
                     float slope, int64_t i0, int64_t offset, int64_t js, int n, OnlineSoftmax* sm, float* acc) {
#if defined(__GNUC__)
  if (D % 16 != 0) {
#endif
    for (int r = 0; r < rows; ++r)
      attendKeys(q + static_cast<size_t>(r) * D, kh, vh, D, rules, slope, i0 + r, offset, js, js + n, sm[r],
                 acc + static_cast<size_t>(r) * D);
    return;
#if defined(__GNUC__)
  }
  float s[kRows][kChunk];
  const float* k = kh + js * D;
  int r = 0;
  for (; r + 2 <= rows; r += 2) {
    const float *qa = q + static_cast<size_t>(r) * D, *qb = qa + D;
    int t = 0;
    for (; t + 4 <= n; t += 4) {
      const float* k0 = k + static_cast<size_t>(t) * D;
      V8 a0 = {}, a1 = {}, a2 = {}, a3 = {}, b0 = {}, b1 = {}, b2 = {}, b3 = {}, x, y, z;
      for (int c = 0; c < D; c += 8) {
        __builtin_memcpy(&x, qa + c, sizeof x);
        __builtin_memcpy(&y, qb + c, sizeof y);
        __builtin_memcpy(&z, k0 + c, sizeof z);
        a0 += x * z;
        b0 += y * z;
        __builtin_memcpy(&z, k0 + D + c, sizeof z);
        a1 += x * z;
        b1 += y * z;
        __builtin_memcpy(&z, k0 + 2 * D + c, sizeof z);
        a2 += x * z;
        b2 += y * z;
        __builtin_memcpy(&z, k0 + 3 * D + c, sizeof z);
        a3 += x * z;
        b3 += y * z;
      }
      s[r][t] = sum8(a0), s[r][t + 1] = sum8(a1), s[r][t + 2] = sum8(a2), s[r][t + 3] = sum8(a3);
      s[r + 1][t] = sum8(b0), s[r + 1][t + 1] = sum8(b1), s[r + 1][t + 2] = sum8(b2), s[r + 1][t + 3] = sum8(b3);
    }
    for (; t < n; ++t) {
      s[r][t] = dotF32(qa, k + static_cast<size_t>(t) * D, D);
      s[r + 1][t] = dotF32(qb, k + static_cast<size_t>(t) * D, D);
    }
  }
  for (; r < rows; ++r)
    for (int t = 0; t < n; ++t) s[r][t] = dotF32(q + static_cast<size_t>(r) * D, k + static_cast<size_t>(t) * D, D);

  // Per row as in attendKeys; a row whose scores are all -inf weighs 0.
  for (r = 0; r < rows; ++r) {
    float* sr = s[r];
    float mx = -INFINITY;
    if (rules.softcap > 0.0f || slope != 0.0f) {
      for (int t = 0; t < n; ++t) sr[t] = rules.score(sr[t], slope, i0 + r, offset, js + t);
    } else {
      for (int t = 0; t < n; ++t) sr[t] *= rules.scale;  // what rules.score does without softcap and ALiBi
    }
    for (int t = 0; t < n; ++t) mx = sr[t] > mx || sr[t] != sr[t] ? sr[t] : mx;  // a NaN stays: the row's result is NaN
    if (mx == -INFINITY) {
      for (int t = 0; t < n; ++t) sr[t] = 0.0f;
      continue;
    }
    if (mx > sm[r].max) {
      const float corr = sm[r].max == -INFINITY ? 0.0f : std::exp(sm[r].max - mx);
      sm[r].sum *= corr;
      float* a = acc + static_cast<size_t>(r) * D;
      for (int c = 0; c < D; ++c) a[c] *= corr;
      sm[r].max = mx;
    }
    for (int t = 0; t < n; ++t) {
      sr[t] = std::exp(sr[t] - sm[r].max);
      sm[r].sum += sr[t];
    }
  }

  const float* v = vh + js * D;
  r = 0;
  for (; r + 4 <= rows; r += 4) {
    float *c0 = acc + static_cast<size_t>(r) * D, *c1 = c0 + D, *c2 = c1 + D, *c3 = c2 + D;
    for (int c = 0; c < D; c += 16) {
      V8 o00, o01, o10, o11, o20, o21, o30, o31, v0, v1;
      __builtin_memcpy(&o00, c0 + c, sizeof v0), __builtin_memcpy(&o01, c0 + c + 8, sizeof v0);
      __builtin_memcpy(&o10, c1 + c, sizeof v0), __builtin_memcpy(&o11, c1 + c + 8, sizeof v0);
      __builtin_memcpy(&o20, c2 + c, sizeof v0), __builtin_memcpy(&o21, c2 + c + 8, sizeof v0);
      __builtin_memcpy(&o30, c3 + c, sizeof v0), __builtin_memcpy(&o31, c3 + c + 8, sizeof v0);
      for (int t = 0; t < n; ++t) {
        __builtin_memcpy(&v0, v + static_cast<size_t>(t) * D + c, sizeof v0);
        __builtin_memcpy(&v1, v + static_cast<size_t>(t) * D + c + 8, sizeof v1);
        o00 += s[r][t] * v0, o01 += s[r][t] * v1;
        o10 += s[r + 1][t] * v0, o11 += s[r + 1][t] * v1;
        o20 += s[r + 2][t] * v0, o21 += s[r + 2][t] * v1;
        o30 += s[r + 3][t] * v0, o31 += s[r + 3][t] * v1;
      }
      __builtin_memcpy(c0 + c, &o00, sizeof v0), __builtin_memcpy(c0 + c + 8, &o01, sizeof v0);
      __builtin_memcpy(c1 + c, &o10, sizeof v0), __builtin_memcpy(c1 + c + 8, &o11, sizeof v0);
      __builtin_memcpy(c2 + c, &o20, sizeof v0), __builtin_memcpy(c2 + c + 8, &o21, sizeof v0);
      __builtin_memcpy(c3 + c, &o30, sizeof v0), __builtin_memcpy(c3 + c + 8, &o31, sizeof v0);
    }
  }
  for (; r < rows; ++r) {
    float* a = acc + static_cast<size_t>(r) * D;
    for (int t = 0; t < n; ++t) {
      const float* vt = v + static_cast<size_t>(t) * D;
      for (int c = 0; c < D; ++c) a[c] += s[r][t] * vt[c];
    }
  }
#endif
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

  // One work item per (sequence, head, block of kRows query rows): the rows take every kChunk-key
  // chunk of K/V in turn while it is in cache, instead of each row streaming all of K/V by itself
  // (at 1k keys, d128, one row's K/V is 1 MB; docs/perf.md, session 13). kRows divides
  // kSparseBlock, so a block's rows share one block-sparse mask row.
  static_assert(kSparseBlock % kRows == 0 && kSparseBlock % kChunk == 0, "row blocks and chunks within mask blocks");
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
      for (const auto& [a, z] : ranges)
        // Chunks on multiples of kChunk (a divisor of kSparseBlock): a mask listing every block
        // visits the same chunks as no mask, so both give bit-identical results.
        for (int64_t jb = a / kChunk * kChunk; jb < z; jb += kChunk) {
          const int64_t js = std::max(jb, a), je = std::min<int64_t>(z, jb + kChunk);
          // Rows [ra, rb) see all of [js, je) (a causal or windowed block's rows see a range that
          // moves with the row, so those that see a whole chunk are contiguous); the rest take
          // their part of it row by row.
          const auto whole = [&](int r) { return lo[r] <= js && je <= hi[r]; };
          int ra = 0;
          while (ra < rows && !whole(ra)) ++ra;
          int rb = ra;
          while (rb < rows && whole(rb)) ++rb;
          if (rb > ra)
            attendChunkRows(&q[static_cast<size_t>(ra) * D], rb - ra, kh, vh, D, rules, slope, i0 + ra, offset, js,
                            static_cast<int>(je - js), sm + ra, &acc[static_cast<size_t>(ra) * D]);
          for (int r = 0; r < rows; ++r) {
            const int64_t j0 = std::max(js, lo[r]), j1 = std::min(je, hi[r]);
            if ((r < ra || r >= rb) && j0 < j1)
              attendKeys(&q[static_cast<size_t>(r) * D], kh, vh, D, rules, slope, i0 + r, offset, j0, j1, sm[r],
                         &acc[static_cast<size_t>(r) * D]);
          }
        }
      for (int r = 0; r < rows; ++r) {
        float* o = &acc[static_cast<size_t>(r) * D];
        const float inv = sm[r].sum > 0.0f ? 1.0f / sm[r].sum : 0.0f;
        for (int c = 0; c < D; ++c) o[c] *= inv;
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
