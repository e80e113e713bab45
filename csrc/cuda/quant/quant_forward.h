// Quantized dense attention forward on CUDA (SageAttention-style: int8 Q.K^T on smoothed K,
// fp8 e4m3 or f16 P.V; rules in csrc/common/quant.h). Head dims 64 and 128, f16/bf16 tensors;
// QuantMode::Int8Fp8 needs sm_89+ (FP8 mma), QuantMode::Int8 runs on sm_80+.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../../common/attention_params.h"
#include "../../common/quant.h"

namespace attn::cuda {

// Host-side plan of one call: per-sequence token starts ([batch + 1] each; kp_start padded to key
// blocks) and the workspace size. cu_q / cu_k: host copies of the cu_seqlens (null when dense).
struct QuantForwardPlan {
  std::vector<int32_t> q_start, k_start, kp_start;
  size_t workspace_bytes = 0;
};

bool quantForwardSupported(const AttnParams& p, QuantMode mode, int sm, std::string* why);
QuantForwardPlan quantForwardPlan(const AttnParams& p, QuantMode mode, const int32_t* cu_q, const int32_t* cu_k);

// Device buffers for one call: the plan's three start arrays, a workspace of
// plan.workspace_bytes (stream-ordered, 256-byte aligned), and batch * heads_kv counters that are
// zero whenever the stream is idle (the device context's split counters).
struct QuantForwardBuffers {
  const int32_t* q_start = nullptr;
  const int32_t* k_start = nullptr;
  const int32_t* kp_start = nullptr;
  void* workspace = nullptr;
  unsigned* counters = nullptr;
};

// True when the sm_90a kernel serves the call on a device of compute capability `sm` (the sm_80
// kernel takes every other one): sm 9.0, head dim 64/128, at least one key, and the environment
// variable ATTN_CUDA_FORCE_SM80 unset or "0" (read per call, so one process can compare both).
bool quantForwardSm90Applies(const AttnParams& p, int sm, int64_t total_kp);

// Enqueues preprocessing then attention (prep = false: attention only, reusing a workspace a
// previous call of the same shapes filled; for the benchmark hook). sm: the device's compute
// capability (major * 10 + minor), which picks the attention kernel.
void quantForward(const AttnParams& p, QuantMode mode, int sm, const QuantForwardPlan& plan,
                  const QuantForwardBuffers& buf, cudaStream_t stream, bool prep = true);

}  // namespace attn::cuda
