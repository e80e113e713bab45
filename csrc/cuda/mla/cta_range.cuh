// The work of one MLA decode CTA, shared by the mma.sync kernel (decode_kernel.cuh) and the sm_90a
// one (decode_sm90.cuh), which keep the same grid so the split workspace and the combine are shared:
// blockIdx.x = (sequence b, block mb of M (query row, head) pairs), blockIdx.y = the KV split.
#pragma once
#include <cuda_runtime.h>

#include "mla_internal.h"

namespace attn::cuda::mla {

struct MlaCta {
  int b, split;
  int q0, nq;      // the sequence's first query row and its query count
  int len_k;       // its cached keys
  int m0, mrows;   // rows [m0, m0 + mrows) of its nq * heads (query row, head) pairs
  int offset;      // query row qi sits at key position offset + qi
  int kbeg, kend;  // the split's keys
  int ntiles;      // tiles of kTile keys covering [kbeg, kend)

  // Keys [0, hi) of local row r: causal rows end at their own position.
  __device__ __forceinline__ int rowHi(const MlaArgs& a, int r) const {
    return a.causal ? max(0, min(len_k, offset + (m0 + r) / a.heads + 1)) : len_k;
  }
};

// Sequence b's row of the block table: its page numbers.
__device__ __forceinline__ const int32_t* mlaPagesOf(const MlaArgs& a, int b) {
  const int table_row = a.block_table_rows != nullptr ? __ldg(a.block_table_rows + b) : b;
  return a.block_table + static_cast<int64_t>(table_row) * a.block_table_stride;
}

// False when the CTA has no rows (uniform over the CTA). The key range is the union of its rows'
// (the last row sees the most keys), cut into num_splits tile-aligned chunks.
template <int M, int kTile>
__device__ __forceinline__ bool mlaCtaOf(const MlaArgs& a, MlaCta& c) {
  const int mb = static_cast<int>(blockIdx.x % static_cast<unsigned>(a.mblocks));
  c.b = static_cast<int>(blockIdx.x / static_cast<unsigned>(a.mblocks));
  c.split = blockIdx.y;
  c.q0 = a.cu_q ? a.cu_q[c.b] : c.b;
  c.nq = a.cu_q ? a.cu_q[c.b + 1] - c.q0 : 1;
  c.len_k = max(a.seq_lens[c.b], 0);
  const int rows_total = c.nq * a.heads;
  c.m0 = mb * M;
  if (c.m0 >= rows_total) return false;
  c.mrows = min(M, rows_total - c.m0);
  c.offset = c.len_k - c.nq;
  const int hi_all = c.rowHi(a, c.mrows - 1);
  const int chunk = ((hi_all + a.num_splits - 1) / a.num_splits + kTile - 1) / kTile * kTile;
  c.kbeg = c.split * chunk;
  c.kend = min(hi_all, c.kbeg + chunk);
  c.ntiles = c.kend > c.kbeg ? (c.kend - c.kbeg + kTile - 1) / kTile : 0;
  return true;
}

}  // namespace attn::cuda::mla
