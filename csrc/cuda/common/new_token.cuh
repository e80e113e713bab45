// Where an append writes its new-token row r: cu_new [batch + 1] cuts the rows into sequences, and
// row r of sequence b goes to the sequence's logical position start_pos[b] + (r - cu_new[b]).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace attn::cuda {

struct NewToken {
  int seq;
  int64_t pos;
};

// Row r of an append whose arguments `a` (any kernel argument block) hold cu_new, start_pos and
// batch. The sequence is the largest b with cu_new[b] <= r, which skips over empty sequences.
template <typename Args>
__device__ __forceinline__ NewToken newTokenOf(const Args& a, int r) {
  int lo = 0, hi = a.batch - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (__ldg(a.cu_new + mid) <= r) lo = mid;
    else hi = mid - 1;
  }
  return NewToken{lo, static_cast<int64_t>(__ldg(a.start_pos + lo)) + (r - __ldg(a.cu_new + lo))};
}

}  // namespace attn::cuda
