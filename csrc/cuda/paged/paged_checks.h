// The argument checks the two paged attention kernels share (decode.cu, prefill.cu). Host-only.
#pragma once
#include <cstdint>
#include <string>

#include "../../common/paged_params.h"

namespace attn::cuda::paged {

inline bool isPow2(int x) { return x > 0 && (x & (x - 1)) == 0; }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Empty when p's element type, head dim, page size, heads, row counts, pointers, alignment and
// strides suit either kernel; otherwise what is wrong.
inline std::string pagedCommonProblem(const PagedAttnParams& p) {
  if (p.dtype != DType::F16 && p.dtype != DType::BF16)
    return std::string("dtype ") + dtypeName(p.dtype) + " is not supported (f16 or bf16)";
  if (p.head_dim != 64 && p.head_dim != 128 && p.head_dim != 256)
    return "head_dim " + std::to_string(p.head_dim) + " is not supported (64, 128 or 256)";
  if (!isPow2(p.page_size)) return "page_size " + std::to_string(p.page_size) + " is not a power of two";
  if (p.heads_q <= 0 || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) return "heads_q must be a positive multiple of heads_kv";
  if (p.batch < 0 || p.total_q < 0) return "batch and total_q must not be negative";
  if (p.cu_seqlens_q == nullptr && p.total_q != p.batch) return "without cu_seqlens_q, total_q must equal batch (one query per sequence)";
  if (p.cu_seqlens_q != nullptr && p.total_q > 0 && p.max_seqlen_q <= 0) return "max_seqlen_q must be positive with cu_seqlens_q";
  if (p.batch > 0 && p.total_q > 0 && (!p.q || !p.o || !p.k_pages || !p.v_pages || !p.block_table || (!p.seq_lens && !p.host_seq_lens)))
    return "q, o, k_pages, v_pages, block_table and seq_lens must be set";
  if (!p.seq_lens && p.host_seq_lens && (p.batch > kPagedInlineBatch || p.cu_seqlens_q || p.block_row_ptr))
    return "host seq_lens are for decode batches of at most " + std::to_string(kPagedInlineBatch) + " sequences";
  if (!aligned16(p.q) || !aligned16(p.o) || !aligned16(p.k_pages) || !aligned16(p.v_pages))
    return "q, o, k_pages and v_pages must be 16-byte aligned";
  const int64_t strides[] = {p.q_row_stride, p.q_head_stride, p.o_row_stride, p.o_head_stride, p.page_stride, p.page_head_stride};
  for (int64_t s : strides)
    if (s % 8 != 0) return "q/o row and head strides and page strides must be multiples of 8 elements";
  return std::string();
}

}  // namespace attn::cuda::paged
