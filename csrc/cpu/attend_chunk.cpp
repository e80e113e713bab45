// The chunk loops of attend_chunk.h. attendKeys and attendChunkRows are compiled twice on x86-64
// Linux (AVX2 + FMA, and the baseline the package is built for) and picked once at load time:
// prebuilt binaries stay portable.
#include "attend_chunk.h"

#include <algorithm>
#include <cmath>

#include "dot.h"

namespace attn::cpu {

namespace {

// The chunk's largest score; NaN if any score is NaN (the row's result is then NaN). Branch-free:
// the NaN test is kept apart from the max (the NaN-sticky select as one loop ran 15% of a chunk).
inline float chunkMax(const float* s, int n) {
  float mx = -INFINITY;
  bool nan = false;
  for (int t = 0; t < n; ++t) {
    mx = mx > s[t] ? mx : s[t];
    nan |= s[t] != s[t];
  }
  return nan ? NAN : mx;
}

#if defined(__GNUC__)
typedef int I8 __attribute__((vector_size(32)));

// s[0..8) = exp(s[0..8) - max) (the arguments are <= 0) to ~1.3 ulp: x = n ln2 + r with
// |r| <= ln2 / 2, Cephes' degree-6 polynomial for e^r, 2^n through the exponent bits. Below -87.3
// (2^n under the normal range) 0; NaN stays NaN. A libm expf call per score was ~20% of a chunk
// (perf, session 14). In place: a V8 argument or result would change the baseline clone's ABI.
inline void expMinusMax8(float* s, float max) {
  V8 x;
  __builtin_memcpy(&x, s, sizeof x);
  x -= max;
  const V8 xc = x >= -88.0f ? x : V8{} - 88.0f;  // also NaN -> -88: the int conversions stay in range
  const V8 t = xc * 1.44269504088896341f + 0.5f;
  V8 n = __builtin_convertvector(__builtin_convertvector(t, I8), V8);
  n = n > t ? n - 1.0f : n;  // truncation -> floor
  V8 r = xc - n * 0.693359375f;  // ln2 in two parts: n times the first is exact
  r = r - n * -2.12194440e-4f;
  V8 p = 1.9875691500e-4f * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const I8 e = (__builtin_convertvector(n, I8) + 127) << 23;
  V8 scale;
  __builtin_memcpy(&scale, &e, sizeof scale);
  const V8 y = x < -87.3f ? V8{} : p * scale;
  x = x != x ? x : y;
  __builtin_memcpy(s, &x, sizeof x);
}

// s[t] = exp(s[t] - max) for t < n (s has room for n rounded up to 8); returns sum plus them,
// added in order. Every score of every path goes through expMinusMax8, so a key's weight does
// not depend on which chunk path took it.
static_assert(kChunk % 8 == 0, "score rows hold whole groups of eight");
inline float expAndSum(float* s, int n, float max, float sum) {
  if (n > kChunk) __builtin_unreachable();  // score rows are kChunk long (GCC cannot see it inlined)
  for (int t = n; t < (n + 7) / 8 * 8; ++t) s[t] = 0.0f;
  for (int t = 0; t < n; t += 8) expMinusMax8(s + t, max);
  for (int t = 0; t < n; ++t) sum += s[t];
  return sum;
}
#else
inline float expAndSum(float* s, int n, float max, float sum) {
  for (int t = 0; t < n; ++t) {
    s[t] = std::exp(s[t] - max);
    sum += s[t];
  }
  return sum;
}
#endif

// Dot products s[0..n) of row i (position offset + i) against keys j0.. -> scores by `rules`
// (without softcap and ALiBi just the scale, which is all rules.score does then).
inline void scoreChunk(float* s, int n, const ScoreRules& rules, float slope, int64_t i, int64_t offset, int64_t j0) {
  if (rules.softcap > 0.0f || slope != 0.0f) {
    for (int t = 0; t < n; ++t) s[t] = rules.score(s[t], slope, i, offset, j0 + t);
  } else {
    for (int t = 0; t < n; ++t) s[t] *= rules.scale;
  }
}

// The chunk's scores s[0..n) into one row's softmax: at most one rescale of its accumulator acc
// (dv floats), then s = the keys' weights. False (s untouched) when every score is -inf: the chunk
// weighs nothing.
inline bool softmaxChunk(float* s, int n, OnlineSoftmax& sm, float* acc, int dv) {
  const float mx = chunkMax(s, n);
  if (mx == -INFINITY) return false;
  if (mx > sm.max) {
    const float corr = sm.max == -INFINITY ? 0.0f : std::exp(sm.max - mx);
    sm.sum *= corr;
    for (int c = 0; c < dv; ++c) acc[c] *= corr;
    sm.max = mx;
  }
  sm.sum = expAndSum(s, n, sm.max, sm.sum);
  return true;
}

}  // namespace

// One max and at most one rescale of the accumulator per chunk, the chunk's scores four keys per
// pass over q, the weighted V rows four at a time (one pass over acc): a max, an exp and a possible
// rescale per key were 1.2-1.5x slower (docs/perf.md, session 13). Rows that see only part of a
// chunk take this path; attendChunkRows the others.
ATTN_CPU_MULTIVERSION
void attendKeys(const float* q, const float* k, const float* v, ChunkDims d, const ScoreRules& rules, float slope,
                int64_t i, int64_t offset, int64_t j0, int n, OnlineSoftmax& sm, float* acc) {
  const int dk = d.dk, dv = d.dv, ld = d.ld;
  float s[kChunk];
  int t = 0;
  for (; t + 4 <= n; t += 4) {
    float d4[4];
    dot4F32(q, k + t * ld, k + (t + 1) * ld, k + (t + 2) * ld, k + (t + 3) * ld, dk, d4);
    for (int u = 0; u < 4; ++u) s[t + u] = d4[u];
  }
  for (; t < n; ++t) s[t] = dotF32(q, k + t * ld, dk);
  scoreChunk(s, n, rules, slope, i, offset, j0);
  if (!softmaxChunk(s, n, sm, acc, dv)) return;
  for (t = 0; t + 4 <= n; t += 4) {
    const float p0 = s[t], p1 = s[t + 1], p2 = s[t + 2], p3 = s[t + 3];
    const float *v0 = v + t * ld, *v1 = v0 + ld, *v2 = v1 + ld, *v3 = v2 + ld;
    for (int c = 0; c < dv; ++c) acc[c] += (p0 * v0[c] + p1 * v1[c]) + (p2 * v2[c] + p3 * v3[c]);
  }
  for (; t < n; ++t) {
    const float* vj = v + t * ld;
    for (int c = 0; c < dv; ++c) acc[c] += s[t] * vj[c];
  }
}

// Scores two rows x four keys per pass (eight accumulator registers), then the weighted V rows four
// rows x 16 channels at a time with their accumulators in registers across the chunk. Head dims
// that are not a multiple of 16 take attendKeys row by row.
ATTN_CPU_MULTIVERSION
void attendChunkRows(const float* q, int rows, const float* k, const float* v, ChunkDims d, const ScoreRules& rules,
                     float slope, int64_t i0, int64_t offset, int64_t j0, int n, OnlineSoftmax* sm, float* acc,
                     bool streamed) {
  const int dk = d.dk, dv = d.dv, ld = d.ld;
  const auto rowByRow = [&] {
    for (int r = 0; r < rows; ++r)
      attendKeys(q + static_cast<size_t>(r) * dk, k, v, d, rules, slope, i0 + r, offset, j0, n, sm[r],
                 acc + static_cast<size_t>(r) * dv);
  };
#if !defined(__GNUC__)
  rowByRow();
#else
  if (dk % 16 != 0 || dv % 16 != 0) return rowByRow();
  // A streamed chunk (read in place, first touched here) with up to kKeyMajorRows rows (decode: a
  // kv head's query heads) is read once, row after row, so the hardware prefetcher streams it from
  // DRAM: 2x at four rows, 1.65x at eight (a 64 MB stream, one thread). The blocked orders below
  // (two rows x four keys, four rows x 16 channels) interleave 4 and 16 rows of the chunk: ~6 GB/s
  // from DRAM, but faster on a cache-hot (gathered) chunk. Same operations per score and per
  // accumulator in the same order: results are bit-identical either way.
  constexpr int kKeyMajorRows = 8;
  const bool key_major = streamed && rows <= kKeyMajorRows;
  float s[kRows][kChunk];
  int r = 0;
  if (key_major) {
    for (; r + 4 <= rows; r += 4) {
      const float *q0 = q + static_cast<size_t>(r) * dk, *q1 = q0 + dk, *q2 = q1 + dk, *q3 = q2 + dk;
      for (int t = 0; t < n; ++t) {
        float d4[4];  // one key row against four query rows: dot4F32 with the roles swapped
        dot4F32(k + static_cast<size_t>(t) * ld, q0, q1, q2, q3, dk, d4);
        s[r][t] = d4[0], s[r + 1][t] = d4[1], s[r + 2][t] = d4[2], s[r + 3][t] = d4[3];
      }
    }
  }
  for (; r + 2 <= rows; r += 2) {
    const float *qa = q + static_cast<size_t>(r) * dk, *qb = qa + dk;
    int t = 0;
    for (; t + 4 <= n; t += 4) {
      const float* k0 = k + static_cast<size_t>(t) * ld;
      V8 a0 = {}, a1 = {}, a2 = {}, a3 = {}, b0 = {}, b1 = {}, b2 = {}, b3 = {}, x, y, z;
      for (int c = 0; c < dk; c += 8) {
        __builtin_memcpy(&x, qa + c, sizeof x);
        __builtin_memcpy(&y, qb + c, sizeof y);
        __builtin_memcpy(&z, k0 + c, sizeof z);
        a0 += x * z;
        b0 += y * z;
        __builtin_memcpy(&z, k0 + ld + c, sizeof z);
        a1 += x * z;
        b1 += y * z;
        __builtin_memcpy(&z, k0 + 2 * ld + c, sizeof z);
        a2 += x * z;
        b2 += y * z;
        __builtin_memcpy(&z, k0 + 3 * ld + c, sizeof z);
        a3 += x * z;
        b3 += y * z;
      }
      s[r][t] = sum8(a0), s[r][t + 1] = sum8(a1), s[r][t + 2] = sum8(a2), s[r][t + 3] = sum8(a3);
      s[r + 1][t] = sum8(b0), s[r + 1][t + 1] = sum8(b1), s[r + 1][t + 2] = sum8(b2), s[r + 1][t + 3] = sum8(b3);
    }
    for (; t < n; ++t) {
      s[r][t] = dotF32(qa, k + static_cast<size_t>(t) * ld, dk);
      s[r + 1][t] = dotF32(qb, k + static_cast<size_t>(t) * ld, dk);
    }
  }
  for (; r < rows; ++r)
    for (int t = 0; t < n; ++t) s[r][t] = dotF32(q + static_cast<size_t>(r) * dk, k + static_cast<size_t>(t) * ld, dk);

  // Per row as in attendKeys; a row whose scores are all -inf weighs 0.
  for (r = 0; r < rows; ++r) {
    scoreChunk(s[r], n, rules, slope, i0 + r, offset, j0);
    if (!softmaxChunk(s[r], n, sm[r], acc + static_cast<size_t>(r) * dv, dv)) std::fill_n(s[r], n, 0.0f);
  }

  r = 0;
  if (key_major) {
    for (int t = 0; t < n; ++t) {
      const float* vt = v + static_cast<size_t>(t) * ld;
      for (int c = 0; c < dv; c += 8) {
        V8 x, o;
        __builtin_memcpy(&x, vt + c, sizeof x);
        for (int rr = 0; rr < rows; ++rr) {
          float* a = acc + static_cast<size_t>(rr) * dv + c;
          __builtin_memcpy(&o, a, sizeof o);
          o += s[rr][t] * x;
          __builtin_memcpy(a, &o, sizeof o);
        }
      }
    }
    r = rows;
  }
  for (; r + 4 <= rows; r += 4) {
    float *c0 = acc + static_cast<size_t>(r) * dv, *c1 = c0 + dv, *c2 = c1 + dv, *c3 = c2 + dv;
    for (int c = 0; c < dv; c += 16) {
      V8 o00, o01, o10, o11, o20, o21, o30, o31, v0, v1;
      __builtin_memcpy(&o00, c0 + c, sizeof v0), __builtin_memcpy(&o01, c0 + c + 8, sizeof v0);
      __builtin_memcpy(&o10, c1 + c, sizeof v0), __builtin_memcpy(&o11, c1 + c + 8, sizeof v0);
      __builtin_memcpy(&o20, c2 + c, sizeof v0), __builtin_memcpy(&o21, c2 + c + 8, sizeof v0);
      __builtin_memcpy(&o30, c3 + c, sizeof v0), __builtin_memcpy(&o31, c3 + c + 8, sizeof v0);
      for (int t = 0; t < n; ++t) {
        __builtin_memcpy(&v0, v + static_cast<size_t>(t) * ld + c, sizeof v0);
        __builtin_memcpy(&v1, v + static_cast<size_t>(t) * ld + c + 8, sizeof v1);
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
    float* a = acc + static_cast<size_t>(r) * dv;
    for (int t = 0; t < n; ++t) {
      const float* vt = v + static_cast<size_t>(t) * ld;
      for (int c = 0; c < dv; ++c) a[c] += s[r][t] * vt[c];
    }
  }
#endif
}

void attendChunk(const float* q, int rows, const int64_t* lo, const int64_t* hi, const float* k, const float* v,
                 ChunkDims d, const ScoreRules& rules, float slope, int64_t i0, int64_t offset, int64_t js, int64_t je,
                 OnlineSoftmax* sm, float* acc) {
  // A row's visible keys move with the row (causal, window), so the rows that see the whole chunk
  // are contiguous: [ra, rb).
  const auto whole = [&](int r) { return lo[r] <= js && je <= hi[r]; };
  int ra = 0;
  while (ra < rows && !whole(ra)) ++ra;
  int rb = ra;
  while (rb < rows && whole(rb)) ++rb;
  if (rb > ra)
    attendChunkRows(q + static_cast<size_t>(ra) * d.dk, rb - ra, k, v, d, rules, slope, i0 + ra, offset, js,
                    static_cast<int>(je - js), sm + ra, acc + static_cast<size_t>(ra) * d.dv);
  for (int r = 0; r < rows; ++r) {
    const int64_t j0 = std::max(js, lo[r]), j1 = std::min(je, hi[r]);
    if ((r < ra || r >= rb) && j0 < j1)
      attendKeys(q + static_cast<size_t>(r) * d.dk, k + (j0 - js) * d.ld, v + (j0 - js) * d.ld, d, rules, slope, i0 + r, offset, j0,
                 static_cast<int>(j1 - j0), sm[r], acc + static_cast<size_t>(r) * d.dv);
  }
}

}  // namespace attn::cpu
