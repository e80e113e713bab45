// Where sequence b of a dense call (attention.cpp, quant_attention.cpp) lives: its first query and
// key rows and lengths (varlen: from cu_seqlens_q / cu_seqlens_k, whose rows fold the batch), and
// the element offset of one of its rows.
#pragma once
#include <cstdint>

#include "../common/attention_params.h"

namespace attn::cpu {

struct SeqBounds {
  int64_t q_row0, k_row0, len_q, len_k;
};

inline SeqBounds bounds(const AttnParams& p, int b) {
  if (p.cu_seqlens_q) {
    return {p.cu_seqlens_q[b], p.cu_seqlens_k[b], p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b],
            p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b]};
  }
  return {0, 0, p.seqlen_q, p.seqlen_k};
}

// Element offset of (sequence b, row r within it, head h) for a tensor with the given strides.
inline int64_t rowOffset(const AttnParams& p, int64_t batch_stride, int64_t row_stride, int64_t head_stride, int b,
                         int64_t row0, int64_t r, int h) {
  const int64_t base = p.cu_seqlens_q ? 0 : b * batch_stride;
  return base + (row0 + r) * row_stride + h * head_stride;
}

}  // namespace attn::cpu
