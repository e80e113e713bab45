// Parameters of one dense attention forward call, shared by every backend.
//
// Layout: q/k/v/o are [batch, seq, heads, head_dim] ("bshd", as FlashAttention) with the
// last dimension contiguous and arbitrary element strides for batch, row (seq) and head.
// Variable-length batches: when cu_seqlens_q is set, the batch dimension is folded into
// rows: sequence b owns rows [cu_seqlens_q[b], cu_seqlens_q[b+1]) and batch strides are unused.
//
// Masking follows FlashAttention: with offset = seqlen_k - seqlen_q (per sequence),
// query i may see key j iff  j >= i + offset - window_left  (window_left  < 0: unbounded)
//                       and  j <= i + offset + window_right (window_right < 0: unbounded).
// causal is window_right = 0 (the caller folds it in; `causal` is kept for dispatch).
// Score pipeline: s = q.k * scale; if softcap > 0: s = softcap * tanh(s / softcap);
// if alibi: s -= slope[h] * |i + offset - j|; then mask; softmax over visible keys.
// A row that sees no key gets output 0 and lse = -inf.
// lse (float32, optional): [batch, heads_q, seqlen_q] dense, [heads_q, total_q] varlen.
#pragma once
#include <cstdint>

#include "block_sparse_mask.h"
#include "dtype.h"

namespace attn {

// The block-sparse mask (BlockSparseMask): query block i of sequence b covers its rows
// [kSparseBlock * i, kSparseBlock * (i + 1)), key block c its keys [kSparseBlock * c, ...).
struct AttnParams : BlockSparseMask {
  DType dtype = DType::F32;  // of q, k, v and o alike

  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  float* lse = nullptr;  // may be null

  // Strides in elements.
  int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;
  int64_t k_batch_stride = 0, k_row_stride = 0, k_head_stride = 0;
  int64_t v_batch_stride = 0, v_row_stride = 0, v_head_stride = 0;
  int64_t o_batch_stride = 0, o_row_stride = 0, o_head_stride = 0;

  int batch = 0;
  int heads_q = 0;
  int heads_kv = 0;  // heads_q % heads_kv == 0 (GQA/MQA)
  int head_dim = 0;
  int seqlen_q = 0;  // dense: every sequence's length; varlen: the maximum
  int seqlen_k = 0;
  int total_q = 0;   // varlen: cu_seqlens_q[batch]; dense: batch * seqlen_q
  int total_k = 0;   // varlen: cu_seqlens_k[batch]; dense: batch * seqlen_k

  // Variable length (both null or both set). Device pointers for CUDA, host for CPU.
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* cu_seqlens_k = nullptr;

  float scale = 1.0f;
  float softcap = 0.0f;  // 0 = off
  // Quantized forward only: leave the outlier channels out of the 8-bit Q.K (csrc/common/quant.h).
  bool quant_outliers = false;
  bool causal = false;
  int window_left = -1;   // -1 = unbounded
  int window_right = -1;  // -1 = unbounded; causal sets 0
  const float* alibi_slopes = nullptr;  // [heads_q] float32, may be null
};

}  // namespace attn
