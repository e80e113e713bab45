// Internal to csrc/cuda/quant: the argument block shared by the preprocessing kernels
// (quant_prep.cu) and the attention kernel (quant_kernel.cuh), and the workspace layout.
// Host-compilable (no device code here).
//
// Token indexing: sequence b owns query rows [q_start[b], q_start[b+1]) and key rows
// [k_start[b], k_start[b+1]) of the packed token axis (dense batches: q_start[b] = b * seqlen_q).
// Its keys are also given a padded range starting at kp_start[b], a multiple of kQuantKeyBlock,
// so that every key block of the quantized K / V^T starts 16-byte aligned and exists in full
// (the padding is written as zeros).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../../common/attention_params.h"
#include "../../common/quant.h"

namespace attn::cuda::quant {

constexpr int kBlockM = 128;            // query rows per CTA (4 warps x 2 m16 tiles)
constexpr int kBlockN = kQuantKeyBlock;  // keys per tile = keys per K scale
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

struct QuantArgs {
  // User tensors (f16 or bf16).
  const void* q;
  const void* k;
  const void* v;
  void* o;
  float* lse;  // may be null
  int64_t q_batch_stride, q_row_stride, q_head_stride;
  int64_t k_batch_stride, k_row_stride, k_head_stride;
  int64_t v_batch_stride, v_row_stride, v_head_stride;
  int64_t o_batch_stride, o_row_stride, o_head_stride;
  int varlen;  // rows of sequence b start at start[b] * row_stride (else b * batch_stride)
  int in_bf16;  // element type of q/k/v/o: 1 bf16, 0 f16

  const int32_t* q_start;   // [batch + 1]
  const int32_t* k_start;   // [batch + 1]
  const int32_t* kp_start;  // [batch + 1], padded key starts (multiples of kBlockN)

  int batch, heads_q, heads_kv, group, head_dim;
  int seqlen_q;  // longest sequence's query rows (grid size)
  int total_q;   // q_start[batch]
  int total_kp;  // kp_start[batch]
  int window_left, window_right;  // < 0: unbounded; causal folded into window_right = 0
  float scale;      // softmax scale
  float mult;       // scale * log2(e)
  int lpt_group;    // see flash::tileOfBlock

  // Workspace (device), written by the preprocessing kernels.
  int8_t* q8;       // [heads_q][total_q][D] int8, or e4m3 bytes (mode fp8)
  float* q_scale;   // [heads_q][total_q]
  float* q_mean;    // [heads_q][total_q]  scale * q . mean_k, added to lse
  int8_t* k8;       // [heads_kv][total_kp][D] int8, or e4m3 bytes (mode fp8)
  float* k_scale;   // [heads_kv][total_kp / kBlockN]
  void* vt;         // [heads_kv][D][total_kp] fp8 e4m3 or f16 (V^T, keys permuted for fp8)
  float* v_scale;   // [batch][heads_kv][D]
  float* v_inv;     // [batch][heads_kv][D]
  float* k_mean;    // [batch][heads_kv][D]
  float* k_part;    // [heads_kv][total_kp / kBlockN][D] per-block key sums
  float* v_part;    // [heads_kv][total_kp / kBlockN][D] per-block |v| maxima

  // [batch][heads_kv] stats CTAs of the sequence done so far: zero before and after each stats
  // launch (the device context's split counters, zeroed once; the last CTA resets its counter).
  unsigned* counters;

  // Outlier channels (csrc/common/quant.h), used when `outliers` is 1: kQuantOutliers per
  // (sequence, kv head), ascending.
  int outliers;       // 1: they leave the 8-bit Q.K (AttnParams::quant_outliers)
  float* k_sq_part;   // [heads_kv][total_kp / kBlockN][D] per-block sums of k^2
  float* k_abs_part;  // [heads_kv][total_kp / kBlockN][D] per-block |k| maxima
  int32_t* outl;       // [batch][heads_kv][kQuantOutliers]
  float* ko_scale;     // [batch][heads_kv] 1 / ko_pow2
  uint16_t* ko;        // [heads_kv][total_kp][kQuantOutliers] f16 bits of k' * ko_pow2 (padding 0)
  uint16_t* qo;        // [heads_q][total_q][kQuantOutliers] f16 bits of q * qo_pow2
  float* qo_scale;     // [heads_q][total_q] 1 / qo_pow2
};

// Byte offsets of the workspace arrays (each 256-byte aligned) and the total size.
struct QuantWorkspace {
  size_t q8, q_scale, q_mean, k8, k_scale, vt, v_scale, v_inv, k_mean, k_part, v_part;
  size_t k_sq_part, k_abs_part, outl, ko_scale, ko, qo, qo_scale, bytes;
};

inline QuantWorkspace quantWorkspaceLayout(const AttnParams& p, QuantMode mode, int64_t total_q, int64_t total_kp) {
  QuantWorkspace w{};
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t off = at;
    at += (bytes + 255) & ~static_cast<size_t>(255);
    return off;
  };
  const size_t D = static_cast<size_t>(p.head_dim);
  const size_t hq = static_cast<size_t>(p.heads_q), hk = static_cast<size_t>(p.heads_kv);
  const size_t tq = static_cast<size_t>(total_q), tk = static_cast<size_t>(total_kp);
  const size_t blocks = tk / kBlockN;
  const size_t vbytes = quantPvFp8(mode) ? 1 : 2;
  w.q8 = take(hq * tq * D);
  w.q_scale = take(hq * tq * 4);
  w.q_mean = take(hq * tq * 4);
  w.k8 = take(hk * tk * D);
  w.k_scale = take(hk * blocks * 4);
  w.vt = take(hk * D * tk * vbytes);
  w.v_scale = take(static_cast<size_t>(p.batch) * hk * D * 4);
  w.v_inv = take(static_cast<size_t>(p.batch) * hk * D * 4);
  w.k_mean = take(static_cast<size_t>(p.batch) * hk * D * 4);
  w.k_part = take(hk * blocks * D * 4);
  w.v_part = take(hk * blocks * D * 4);
  const size_t outl = p.quant_outliers ? 1 : 0;  // the outlier arrays take no room when off
  w.k_sq_part = take(outl * hk * blocks * D * 4);
  w.k_abs_part = take(outl * hk * blocks * D * 4);
  w.outl = take(outl * static_cast<size_t>(p.batch) * hk * kQuantOutliers * 4);
  w.ko_scale = take(outl * static_cast<size_t>(p.batch) * hk * 4);
  w.ko = take(outl * hk * tk * kQuantOutliers * 2);
  w.qo = take(outl * hq * tq * kQuantOutliers * 2);
  w.qo_scale = take(outl * hq * tq * 4);
  w.bytes = at;
  return w;
}

// quant_prep.cu: the two preprocessing launches (stats with the per-sequence finish, then K/V and
// Q quantization). keyless_seqs: some sequence has no keys (and so no key block).
void launchQuantPrep(const QuantArgs& a, QuantMode mode, bool keyless_seqs, cudaStream_t stream);
// quant_fwd_hd*.cu: the attention kernel for one head dim.
void launchQuantFwdHd64(const QuantArgs& a, QuantMode mode, cudaStream_t stream);
void launchQuantFwdHd128(const QuantArgs& a, QuantMode mode, cudaStream_t stream);

}  // namespace attn::cuda::quant
