// Quantized dense attention forward on the CPU: emulates the CUDA kernels of csrc/cuda/quant
// exactly (same quantization, same block order), see csrc/common/quant.h.
#pragma once
#include "../common/attention_params.h"
#include "../common/quant.h"

namespace attn::cpu {

// Host pointers throughout. Ignores p.softcap / p.alibi_slopes (the caller rejects them).
void quantAttentionForward(const AttnParams& p, QuantMode mode);

}  // namespace attn::cpu
