// Capability check, plan and dispatch of the quantized forward: preprocessing (quant_prep.cu),
// then the attention kernel of the head dim: the sm_90a one (../hopper/flash_fwd_sm90_quant_hd*.cu)
// on compute capability 9.0, else the sm_80 one (quant_fwd_hd*.cu).
#include "quant_forward.h"

#include <string>

#include "../../common/env_flag.h"
#include "../../common/error.h"
#include "../hopper/flash_fwd_sm90_quant.h"
#include "quant_internal.h"

namespace attn::cuda {

namespace {

bool fail(std::string* why, const std::string& msg) {
  if (why != nullptr) *why = msg;
  return false;
}

bool aligned(const void* base, int64_t batch_stride, bool batch_used, int64_t row_stride, int64_t head_stride,
             bool head_used) {
  if (reinterpret_cast<uintptr_t>(base) % 16 != 0) return false;
  if (batch_used && batch_stride % 8 != 0) return false;
  if (row_stride % 8 != 0) return false;
  return !(head_used && head_stride % 8 != 0);
}

}  // namespace

bool quantForwardSupported(const AttnParams& p, QuantMode mode, int sm, std::string* why) {
  if (quantPvFp8(mode) && sm < 89)
    return fail(why, std::string("quantized '") + (mode == QuantMode::Fp8 ? "fp8" : "int8-fp8") +
                         "' needs FP8 tensor cores (compute capability 8.9+, got " + std::to_string(sm) +
                         "); use quantized: 'int8' (f16 P.V) on this device");
  if (sm < 80) return fail(why, "quantized attention needs compute capability 8.0+ (got " + std::to_string(sm) + ")");
  if (p.dtype != DType::F16 && p.dtype != DType::BF16)
    return fail(why, std::string("quantized attention supports f16 and bf16 inputs, not ") + dtypeName(p.dtype));
  if (p.head_dim != 64 && p.head_dim != 128)
    return fail(why, "quantized attention supports head_dim 64 and 128, not " + std::to_string(p.head_dim));
  if (p.softcap > 0.0f || p.alibi_slopes != nullptr) return fail(why, "quantized attention supports neither softcap nor ALiBi");
  if (!(p.scale > 0.0f)) return fail(why, "quantized attention needs scale > 0");
  if (p.heads_q <= 0 || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0)
    return fail(why, "heads_q must be a positive multiple of heads_kv");
  if (p.heads_q > 65535 || p.batch > 65535) return fail(why, "quantized attention supports at most 65535 heads and batches");
  const bool varlen = p.cu_seqlens_q != nullptr;
  const bool batch_used = !varlen && p.batch > 1;
  if (!aligned(p.q, p.q_batch_stride, batch_used, p.q_row_stride, p.q_head_stride, p.heads_q > 1) ||
      !aligned(p.k, p.k_batch_stride, batch_used, p.k_row_stride, p.k_head_stride, p.heads_kv > 1) ||
      !aligned(p.v, p.v_batch_stride, batch_used, p.v_row_stride, p.v_head_stride, p.heads_kv > 1) ||
      !aligned(p.o, p.o_batch_stride, batch_used, p.o_row_stride, p.o_head_stride, p.heads_q > 1))
    return fail(why, "quantized attention needs 16-byte aligned q/k/v/o and strides that are multiples of 8 elements");
  if (why != nullptr) why->clear();
  return true;
}

QuantForwardPlan quantForwardPlan(const AttnParams& p, QuantMode mode, const int32_t* cu_q, const int32_t* cu_k) {
  QuantForwardPlan plan;
  const int B = p.batch;
  plan.q_start.resize(B + 1);
  plan.k_start.resize(B + 1);
  plan.kp_start.resize(B + 1);
  int64_t kp = 0;
  for (int b = 0; b <= B; ++b) {
    plan.q_start[b] = cu_q ? cu_q[b] : b * p.seqlen_q;
    plan.k_start[b] = cu_k ? cu_k[b] : b * p.seqlen_k;
    plan.kp_start[b] = static_cast<int32_t>(kp);
    if (b < B) {
      const int64_t len = cu_k ? cu_k[b + 1] - cu_k[b] : p.seqlen_k;
      kp += (len + quant::kBlockN - 1) / quant::kBlockN * quant::kBlockN;
      if (kp > INT32_MAX) throwRange("quantized attention: too many keys (padded key count exceeds 2^31)");
    }
  }
  const int64_t total_q = plan.q_start[B];
  plan.workspace_bytes = quant::quantWorkspaceLayout(p, mode, total_q, kp).bytes;
  return plan;
}

bool quantForwardSm90Applies(const AttnParams& p, int sm, int64_t total_kp) {
  // Read on every call (unlike the dense dispatch): tests and benchmarks switch kernels in-process.
  const bool forced_off = envFlag("ATTN_CUDA_FORCE_SM80", false);
  // The key / V^T tensor maps need at least one (padded) key block.
  return sm == 90 && !forced_off && (p.head_dim == 64 || p.head_dim == 128) && total_kp > 0;
}

void quantForward(const AttnParams& p, QuantMode mode, int sm, const QuantForwardPlan& plan,
                  const QuantForwardBuffers& buf, cudaStream_t stream, bool prep) {
  const int B = p.batch;
  const int64_t total_q = plan.q_start[B];
  const int64_t total_kp = plan.kp_start[B];
  if (B <= 0 || total_q == 0) return;
  const quant::QuantWorkspace w = quant::quantWorkspaceLayout(p, mode, total_q, total_kp);
  char* ws = static_cast<char*>(buf.workspace);
  quant::QuantArgs a{};
  a.q = p.q;
  a.k = p.k;
  a.v = p.v;
  a.o = p.o;
  a.lse = p.lse;
  a.q_batch_stride = p.q_batch_stride;
  a.q_row_stride = p.q_row_stride;
  a.q_head_stride = p.q_head_stride;
  a.k_batch_stride = p.k_batch_stride;
  a.k_row_stride = p.k_row_stride;
  a.k_head_stride = p.k_head_stride;
  a.v_batch_stride = p.v_batch_stride;
  a.v_row_stride = p.v_row_stride;
  a.v_head_stride = p.v_head_stride;
  a.o_batch_stride = p.o_batch_stride;
  a.o_row_stride = p.o_row_stride;
  a.o_head_stride = p.o_head_stride;
  a.varlen = p.cu_seqlens_q != nullptr ? 1 : 0;
  a.in_bf16 = p.dtype == DType::BF16 ? 1 : 0;
  a.q_start = buf.q_start;
  a.k_start = buf.k_start;
  a.kp_start = buf.kp_start;
  a.batch = B;
  a.heads_q = p.heads_q;
  a.heads_kv = p.heads_kv;
  a.group = p.heads_q / p.heads_kv;
  a.head_dim = p.head_dim;
  a.seqlen_q = p.seqlen_q;
  a.total_q = static_cast<int>(total_q);
  a.total_kp = static_cast<int>(total_kp);
  a.window_left = p.window_left < 0 ? -1 : p.window_left;
  a.window_right = p.window_right < 0 ? -1 : p.window_right;
  a.scale = p.scale;
  a.mult = p.scale * 1.4426950408889634f;
  a.outliers = p.quant_outliers ? 1 : 0;
  a.q8 = reinterpret_cast<int8_t*>(ws + w.q8);
  a.q_scale = reinterpret_cast<float*>(ws + w.q_scale);
  a.q_mean = reinterpret_cast<float*>(ws + w.q_mean);
  a.k8 = reinterpret_cast<int8_t*>(ws + w.k8);
  a.k_scale = reinterpret_cast<float*>(ws + w.k_scale);
  a.vt = ws + w.vt;
  a.v_scale = reinterpret_cast<float*>(ws + w.v_scale);
  a.v_inv = reinterpret_cast<float*>(ws + w.v_inv);
  a.k_mean = reinterpret_cast<float*>(ws + w.k_mean);
  a.k_part = reinterpret_cast<float*>(ws + w.k_part);
  a.v_part = reinterpret_cast<float*>(ws + w.v_part);
  a.k_sq_part = reinterpret_cast<float*>(ws + w.k_sq_part);
  a.k_abs_part = reinterpret_cast<float*>(ws + w.k_abs_part);
  a.outl = reinterpret_cast<int32_t*>(ws + w.outl);
  a.ko_scale = reinterpret_cast<float*>(ws + w.ko_scale);
  a.ko = reinterpret_cast<uint16_t*>(ws + w.ko);
  a.qo = reinterpret_cast<uint16_t*>(ws + w.qo);
  a.qo_scale = reinterpret_cast<float*>(ws + w.qo_scale);
  a.counters = buf.counters;
  if (prep) {
    bool keyless_seqs = false;
    for (int b = 0; b < B; ++b) keyless_seqs |= plan.k_start[b + 1] == plan.k_start[b];
    quant::launchQuantPrep(a, mode, keyless_seqs, stream);
  }
  if (quantForwardSm90Applies(p, sm, total_kp)) {
    if (p.head_dim == 64) {
      hopper::launchQuantFwdSm90Hd64(a, mode, stream);
    } else {
      hopper::launchQuantFwdSm90Hd128(a, mode, stream);
    }
  } else if (p.head_dim == 64) {
    quant::launchQuantFwdHd64(a, mode, stream);
  } else {
    quant::launchQuantFwdHd128(a, mode, stream);
  }
}

}  // namespace attn::cuda
