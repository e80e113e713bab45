// The key ranges a CPU kernel visits for one query block (attention.cpp, paged_attention.cpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "../common/block_sparse_mask.h"

namespace attn::cpu {

// Appends to `ranges` the keys of [lo, hi) that mask row r lists, as half-open ranges in list
// order; without a mask (null block_row_ptr), [lo, hi) itself. Keys below the end of the last range
// taken are skipped, so even an unsorted list never visits a key twice. Offsets are clamped to
// [0, block_mask_nnz], as the CUDA kernels do.
inline void maskKeyRanges(const BlockSparseMask& m, int64_t r, int64_t lo, int64_t hi,
                          std::vector<std::pair<int64_t, int64_t>>& ranges) {
  if (m.block_row_ptr == nullptr) {
    if (lo < hi) ranges.emplace_back(lo, hi);
    return;
  }
  const int64_t e0 = std::clamp<int64_t>(m.block_row_ptr[r], 0, m.block_mask_nnz);
  const int64_t e1 = std::clamp<int64_t>(m.block_row_ptr[r + 1], e0, m.block_mask_nnz);
  int64_t next = lo;
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t k0 = std::max<int64_t>(next, static_cast<int64_t>(m.block_col_idx[e]) * kSparseBlock);
    const int64_t k1 = std::min<int64_t>(hi, (static_cast<int64_t>(m.block_col_idx[e]) + 1) * kSparseBlock);
    if (k0 < k1) {
      ranges.emplace_back(k0, k1);
      next = k1;
    }
  }
}

}  // namespace attn::cpu
