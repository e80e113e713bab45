// The sequence of each query row of a call over a paged cache (paged_attention.cpp,
// mla_attention.cpp): sequence b owns rows [cu_seqlens_q[b], cu_seqlens_q[b + 1]), or row b alone
// without cu_seqlens_q.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../common/error.h"

namespace attn::cpu {

// The caller has checked that cu_seqlens_q starts at 0 and ends at total_q; `op` names it in the
// error for decreasing offsets.
inline std::vector<int> querySequences(const int32_t* cu_seqlens_q, int batch, int total_q, const char* op) {
  std::vector<int> row_seq(static_cast<size_t>(total_q));
  for (int b = 0; b < batch; ++b) {
    const int r0 = cu_seqlens_q ? cu_seqlens_q[b] : b;
    const int r1 = cu_seqlens_q ? cu_seqlens_q[b + 1] : b + 1;
    if (r1 < r0) throwRange(std::string(op) + ": cu_seqlens_q must be non-decreasing");
    for (int r = r0; r < r1; ++r) row_seq[static_cast<size_t>(r)] = b;
  }
  return row_seq;
}

}  // namespace attn::cpu
