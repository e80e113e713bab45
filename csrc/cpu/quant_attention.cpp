// Quantized attention forward on the CPU. Plain code that follows the rules of
// csrc/common/quant.h step by step, in the order the CUDA kernel does them, so that the two agree
// up to accumulation order and the device's exp2 approximation.
#include "quant_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../common/half.h"
#include "dense_sequences.h"
#include "element_io.h"
#include "parallel.h"

namespace attn::cpu {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kB = kQuantKeyBlock;

// One (sequence, kv head) after preprocessing.
struct QuantKv {
  std::vector<float> mean;    // [D]
  std::vector<int> outl;      // outlier channels, ascending (csrc/common/quant.h)
  std::vector<char> is_outl;  // [D]
  std::vector<float> ko;      // [len_k][outl.size()] the stored f16 value of k' * ko_pow2, as float
  float ko_pow2 = 1.0f;
  std::vector<int8_t> k8;     // [len_k][D] (int8 modes)
  std::vector<float> kf;      // [len_k][D] the stored e4m3 value as float (mode fp8)
  std::vector<float> kscale;  // [blocks]
  std::vector<float> vq;      // [len_k][D], the stored fp8/f16 value as float
  std::vector<float> vscale;  // [D]
};

float storedV(float x, bool fp8) { return fp8 ? fp8e4m3ToFloat(floatToFp8e4m3(x)) : f16ToFloat(floatToF16(x)); }
float storedFp8(float x, float inv) { return fp8e4m3ToFloat(floatToFp8e4m3(x * inv)); }

void quantizeKv(const AttnParams& p, int b, int hk, bool fp8, bool qk_fp8, bool rot, QuantKv* out) {
  const int n_outl = p.quant_outliers ? quantOutlierCount(p.head_dim) : 0;
  const int D = p.head_dim;
  const SeqBounds sb = bounds(p, b);
  const int64_t n = sb.len_k;
  std::vector<float> k(static_cast<size_t>(n * D)), v(static_cast<size_t>(n * D));
  for (int64_t j = 0; j < n; ++j) {
    loadRow(p.k, rowOffset(p, p.k_batch_stride, p.k_row_stride, p.k_head_stride, b, sb.k_row0, j, hk), p.dtype, D, &k[j * D]);
    loadRow(p.v, rowOffset(p, p.v_batch_stride, p.v_row_stride, p.v_head_stride, b, sb.k_row0, j, hk), p.dtype, D, &v[j * D]);
  }
  const int64_t blocks = (n + kB - 1) / kB;
  // Mean: per block a sequential float sum over its keys, then the blocks in order (the CUDA
  // stats kernel sums each block, and its last CTA per sequence the blocks, in exactly this order).
  out->mean.assign(D, 0.0f);
  std::vector<float> vmax(D, 0.0f), var(D, 0.0f), kabs(D, 0.0f);
  for (int c = 0; c < D; ++c) {
    float total = 0.0f, total_sq = 0.0f;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      float part = 0.0f, part_sq = 0.0f;
      for (int64_t j = blk * kB; j < std::min(n, (blk + 1) * kB); ++j) {
        part += k[j * D + c];
        part_sq = std::fmaf(k[j * D + c], k[j * D + c], part_sq);
        vmax[c] = std::fmax(vmax[c], std::fabs(v[j * D + c]));
        kabs[c] = std::fmax(kabs[c], std::fabs(k[j * D + c]));
      }
      total += part;
      total_sq += part_sq;
    }
    out->mean[c] = n > 0 ? total / static_cast<float>(n) : 0.0f;
    var[c] = n > 0 ? std::fmaf(-out->mean[c], out->mean[c], total_sq / static_cast<float>(n)) : 0.0f;
  }
  // Outlier channels: rank by variance (NaN last, ties to the lower channel), the first few.
  out->is_outl.assign(D, 0);
  if (n_outl > 0)
    for (int c = 0; c < D; ++c) out->is_outl[c] = outlierRank(var.data(), D, c) < n_outl ? 1 : 0;
  out->outl.clear();
  for (int c = 0; c < D; ++c)
    if (out->is_outl[c]) out->outl.push_back(c);
  const int n_out = static_cast<int>(out->outl.size());
  // The f16 power of two from a bound on |k - mean| (max |k| + |mean|), which the statistics give.
  float bound = 0.0f;
  for (int c : out->outl) bound = std::fmax(bound, kabs[c] + std::fabs(out->mean[c]));
  out->ko_pow2 = outlierPow2(bound);
  const float k_target = qk_fp8 ? kFp8Max : kInt8Max;
  if (qk_fp8) {
    out->kf.assign(static_cast<size_t>(n * D), 0.0f);
  } else {
    out->k8.assign(static_cast<size_t>(n * D), 0);
  }
  out->kscale.assign(static_cast<size_t>(blocks), 0.0f);
  for (int64_t j = 0; j < n; ++j)
    for (int c = 0; c < D; ++c) k[j * D + c] -= out->mean[c];
  if (rot)
    for (int64_t j = 0; j < n; ++j) rotateRow(&k[j * D], D);
  out->ko.resize(static_cast<size_t>(n * n_out));
  for (int64_t j = 0; j < n; ++j)
    for (int i = 0; i < n_out; ++i) out->ko[j * n_out + i] = f16ToFloat(floatToF16(k[j * D + out->outl[i]] * out->ko_pow2));
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kB, j1 = std::min(n, j0 + kB);
    float amax = 0.0f;
    for (int64_t j = j0; j < j1; ++j)
      for (int c = 0; c < D; ++c)
        if (!out->is_outl[c]) amax = std::fmax(amax, std::fabs(k[j * D + c]));
    const float inv = quantInverse(k_target, amax);
    out->kscale[blk] = quantScale(k_target, amax);
    for (int64_t j = j0; j < j1; ++j)
      for (int c = 0; c < D; ++c) {
        const float x = out->is_outl[c] ? 0.0f : k[j * D + c];
        if (qk_fp8) {
          out->kf[j * D + c] = storedFp8(x, inv);
        } else {
          out->k8[j * D + c] = quantizeInt8(x, inv);
        }
      }
  }
  out->vscale.resize(D);
  out->vq.resize(static_cast<size_t>(n * D));
  for (int c = 0; c < D; ++c) {
    const float inv = quantInverse(kQuantVTarget, vmax[c]);
    out->vscale[c] = quantScale(kQuantVTarget, vmax[c]);
    for (int64_t j = 0; j < n; ++j) out->vq[j * D + c] = storedV(v[j * D + c] * inv, fp8);
  }
}

}  // namespace

void quantAttentionForward(const AttnParams& p, QuantMode mode) {
  const int D = p.head_dim;
  const int group = p.heads_q / p.heads_kv;
  const bool fp8 = quantPvFp8(mode);
  const bool qk_fp8 = quantQkFp8(mode);
  const float q_target = qk_fp8 ? kFp8Max : kInt8Max;
  const float p_scale = fp8 ? kQuantPScaleFp8 : 1.0f;
  const float mult = p.scale * kLog2e;  // scores in log2 units, as the kernel's exp2 softmax
  const bool rot = quantRotates(p.quant_outliers, D);
  const float rot_scale = rot ? 1.0f / static_cast<float>(D) : 1.0f;  // (Q R)(K R)^T = D Q K^T

  std::vector<QuantKv> kv(static_cast<size_t>(p.batch) * p.heads_kv);
  parallelFor(static_cast<int64_t>(kv.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) quantizeKv(p, static_cast<int>(u / p.heads_kv), static_cast<int>(u % p.heads_kv), fp8, qk_fp8, rot, &kv[u]);
  });

  std::vector<int64_t> q_base(p.batch + 1, 0);
  for (int b = 0; b < p.batch; ++b) q_base[b + 1] = q_base[b] + bounds(p, b).len_q;
  const int64_t items = q_base[p.batch] * p.heads_q;

  parallelFor(items, 8, [&](int64_t begin, int64_t end) {
    std::vector<float> q(D), acc(D), part(D), x(kB), pq(kB), qf(D), qo(D);
    std::vector<int8_t> q8(D);
    int b = 0;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t row = item / p.heads_q;
      const int h = static_cast<int>(item % p.heads_q);
      while (q_base[b + 1] <= row) ++b;
      while (q_base[b] > row) --b;
      const SeqBounds sb = bounds(p, b);
      const int64_t i = row - q_base[b];
      const int hk = h / group;
      const QuantKv& s = kv[static_cast<size_t>(b) * p.heads_kv + hk];

      loadRow(p.q, rowOffset(p, p.q_batch_stride, p.q_row_stride, p.q_head_stride, b, sb.q_row0, i, h), p.dtype, D, q.data());
      float qm = 0.0f;  // q . mean(k), of the unrotated q
      for (int c = 0; c < D; ++c) qm += q[c] * s.mean[c];
      if (rot) rotateRow(q.data(), D);
      float amax = 0.0f, amax_out = 0.0f;
      for (int c = 0; c < D; ++c) {
        if (s.is_outl[c]) {
          amax_out = std::fmax(amax_out, std::fabs(q[c]));
        } else {
          amax = std::fmax(amax, std::fabs(q[c]));
        }
      }
      const float qinv = quantInverse(q_target, amax);
      for (int c = 0; c < D; ++c) {
        const float xq = s.is_outl[c] ? 0.0f : q[c];
        if (qk_fp8) {
          qf[c] = storedFp8(xq, qinv);
        } else {
          q8[c] = quantizeInt8(xq, qinv);
        }
      }
      const int n_out = static_cast<int>(s.outl.size());
      const float qo_pow2 = outlierPow2(amax_out);
      for (int i = 0; i < n_out; ++i) qo[i] = f16ToFloat(floatToF16(q[s.outl[i]] * qo_pow2));
      const float row_mult = quantScale(q_target, amax) * rot_scale * mult;
      const float out_mult = mult / (qo_pow2 * s.ko_pow2);

      // Visible keys [lo, hi): the mask of csrc/common/attention_params.h.
      const int64_t offset = sb.len_k - sb.len_q;
      int64_t lo = 0, hi = sb.len_k;
      if (p.window_left >= 0) lo = std::max<int64_t>(lo, i + offset - p.window_left);
      if (p.window_right >= 0) hi = std::min<int64_t>(hi, i + offset + p.window_right + 1);
      std::fill(acc.begin(), acc.end(), 0.0f);
      float m = -INFINITY, l = 0.0f;
      if (lo < hi) {
        for (int64_t blk = (hi - 1) / kB; blk >= lo / kB; --blk) {
          const int64_t j0 = std::max(lo, blk * kB), j1 = std::min(hi, (blk + 1) * kB);
          const float bm = row_mult * s.kscale[blk];
          float mx = m;
          for (int64_t j = j0; j < j1; ++j) {
            float dot;
            if (qk_fp8) {
              // The e4m3 products are exact in double; the tensor cores sum them in about float32.
              double d = 0.0;
              const float* kj = &s.kf[j * D];
              for (int c = 0; c < D; ++c) d += static_cast<double>(qf[c]) * kj[c];
              dot = static_cast<float>(d);
            } else {
              int32_t di = 0;
              const int8_t* kj = &s.k8[j * D];
              for (int c = 0; c < D; ++c) di += static_cast<int32_t>(q8[c]) * kj[c];
              dot = static_cast<float>(di);
            }
            // The f16 products are exact in double; the tensor cores sum them in float32.
            double d_out = 0.0;
            const float* koj = &s.ko[j * n_out];
            for (int i = 0; i < n_out; ++i) d_out += static_cast<double>(qo[i]) * koj[i];
            x[j - j0] = n_out > 0 ? std::fmaf(static_cast<float>(d_out), out_mult, dot * bm) : dot * bm;
            mx = std::fmax(mx, x[j - j0]);
          }
          const float corr = std::exp2(m - mx);  // m == -inf -> 0
          m = mx;
          float sum = 0.0f;
          std::fill(part.begin(), part.end(), 0.0f);
          for (int64_t j = j0; j < j1; ++j) {
            const float pr = std::exp2(x[j - j0] - mx);
            sum += pr;
            const float pv = fp8 ? fp8e4m3ToFloat(floatToFp8e4m3(pr * p_scale)) : f16ToFloat(floatToF16(pr));
            const float* vj = &s.vq[j * D];
            for (int c = 0; c < D; ++c) part[c] += pv * vj[c];
          }
          l = l * corr + sum;
          for (int c = 0; c < D; ++c) acc[c] = acc[c] * corr + part[c];
        }
      }
      const float inv_l = l > 0.0f ? 1.0f / (l * p_scale) : 0.0f;
      for (int c = 0; c < D; ++c) acc[c] *= s.vscale[c] * inv_l;
      storeRow(p.o, rowOffset(p, p.o_batch_stride, p.o_row_stride, p.o_head_stride, b, sb.q_row0, i, h), p.dtype, D, acc.data());
      if (p.lse) {
        const int64_t idx = p.cu_seqlens_q ? static_cast<int64_t>(h) * p.total_q + sb.q_row0 + i
                                           : (static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen_q + i;
        p.lse[idx] = l > 0.0f ? (m + std::log2(l)) * kLn2 + p.scale * qm : -INFINITY;
      }
    }
  });
}

}  // namespace attn::cpu
