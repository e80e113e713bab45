// Dense attention forward on the CPU (f32, f16, bf16 storage; float32 math with online softmax).
#pragma once
#include "../common/attention_params.h"

namespace attn::cpu {

// Host pointers throughout. Multi-threaded over (sequence, head, query block).
void attentionForward(const AttnParams& p);

}  // namespace attn::cpu
