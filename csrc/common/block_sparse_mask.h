// The block-sparse mask of an attention call (lib/block_sparse.ts), in CSR form over blocks of
// kSparseBlock query rows and kSparseBlock keys; AttnParams and PagedAttnParams carry one each and
// say which rows and keys their blocks cover.
#pragma once
#include <cstdint>

namespace attn {

// Rows and columns of one block of a block-sparse mask; a multiple of every CUDA tile.
constexpr int kSparseBlock = 128;

// Null block_row_ptr: dense. Query block i of sequence b, head h visits only the key blocks
// block_col_idx[block_row_ptr[r] .. block_row_ptr[r + 1]) (ascending), r = blockMaskRow(b, h, i).
// ANDed with every other mask. Device pointers for CUDA, host for CPU. Kernels clamp offsets to
// [0, block_mask_nnz].
struct BlockSparseMask {
  const int32_t* block_row_ptr = nullptr;
  const int32_t* block_col_idx = nullptr;
  int block_mask_batch = 1;  // 1: broadcast over the batch
  int block_mask_heads = 1;  // 1: broadcast over the query heads
  int block_mask_q_blocks = 0;
  int block_mask_k_blocks = 0;
  int block_mask_nnz = 0;

  int64_t blockMaskRow(int b, int h, int q_block) const {
    const int mb = block_mask_batch == 1 ? 0 : b;
    const int mh = block_mask_heads == 1 ? 0 : h;
    return (static_cast<int64_t>(mb) * block_mask_heads + mh) * (block_mask_q_blocks + 1) + q_block;
  }
};

}  // namespace attn
