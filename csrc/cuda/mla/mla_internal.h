// Internal to csrc/cuda/mla: the decode kernel's shape, its shared-memory plan, its argument block
// and the launchers each .cu file provides. Host-compilable (no device code here).
//
// CTA = (sequence, block of M (query row, head) pairs, KV split); 8 warps; keys stream through
// shared memory in tiles of 32 rows of 576 (latent 512 + rope 64). The M rows are the MMA's M
// dimension, so every head of the block shares each tile read from HBM. Two shapes: M = 64 for many
// heads (compute-bound: 4 x 2 warps compute S = Q K^T, 16 rows x 16 keys each) and M = 16 for few
// (memory-bound: 4 warps compute S, 8 keys each). All 8 warps then compute O += P V for 64 of the
// 512 latent columns each (V is the latent part of the same tile: no second read), with P shared
// through shared memory, as FlashMLA splits O across warpgroups.
// On Hopper the compute-bound case (bf16 cache, M = 64, pages of 16+ keys) runs the wgmma kernel of
// decode_sm90.h instead: same CTA mapping, workspace and combine; this kernel is its fallback.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "../../common/dtype.h"
#include "../../common/mla_params.h"
#include "../common/launch_args.h"

namespace attn::cuda::mla {

constexpr int kThreads = 256;
constexpr int kWarps = 8;
constexpr int kTileKeys = 32;
constexpr int kRowBytes = kMlaRow * 2;                  // one bf16 row: 1152 bytes, 72 chunks
constexpr int kTileBytes = kTileKeys * kRowBytes;       // 36864
constexpr int kTile8Bytes = kTileKeys * kMlaRow;        // fp8 staging tile: 18432
constexpr int kScaleBytes = kTileKeys * 2 * 4;          // fp8 scales of a tile: 256
constexpr int kMinKeysPerSplit = 256;
constexpr int kMaxAutoSplits = 64;
constexpr int kMaxSplits = 65535;  // grid.y

constexpr int warpsN(int m) { return std::min(kWarps / (m / 16), kTileKeys / 8); }
// Shared memory: [reductions (floats)] [P tile, bf16 M x 32] [Q, bf16 M x 576] [K/V stages].
constexpr int redBytes(int m) { return (2 * warpsN(m) + 2) * m * 4; }
constexpr int pBytes(int m) { return m * kTileKeys * 2; }
constexpr int qBytes(int m) { return m * kRowBytes; }
constexpr int kvBytes(bool fp8, int stages) {
  return fp8 ? kTileBytes + stages * (kTile8Bytes + kScaleBytes) : stages * kTileBytes;
}
constexpr int smemBytes(int m, bool fp8, int stages) { return redBytes(m) + pBytes(m) + qBytes(m) + kvBytes(fp8, stages); }
constexpr int maxStages(int m, bool fp8) { return fp8 ? 8 : (m == 64 ? 4 : 6); }  // cp.async wait covers stages - 2 <= 7

struct MlaArgs {
  const void* q;
  void* o;
  float* lse;  // final lse [total_q, heads] or null
  int64_t q_row_stride, q_head_stride;
  int64_t o_row_stride, o_head_stride;
  const int32_t* cu_q;  // null: one query per sequence
  const void* pages;    // the layer's [num_pages, page_size, 576] rows
  const float* scales;  // fp8: the layer's [num_pages, page_size, 2]
  const int32_t* block_table;
  int64_t block_table_stride;
  const int32_t* block_table_rows;  // [batch] or null (row b)
  const int32_t* seq_lens;
  int batch, total_q, heads;
  int page_shift;  // log2(page_size)
  int mblocks;     // CTAs along the (query row, head) axis of one sequence
  float scale_log2;     // scale * log2(e), without softcap
  float softcap_scale;  // scale / softcap
  float softcap_log2;   // softcap * log2(e)
  int has_softcap;
  int causal;
  int num_splits;
  int stages;     // pipeline depth, set by the launcher
  float* ws_o;    // [num_splits, total_q, heads, 512] (num_splits > 1)
  float* ws_lse;  // [num_splits, total_q, heads]
};

// The latent cache's fields of a kernel argument block (MlaArgs, append.cu's AppendArgs).
template <typename Args>
void setCacheArgs(Args& a, const MlaCacheView& c) {
  a.pages = c.pages;
  a.scales = c.scales;
  setBlockTableArgs(a, c);
}

// decode_m16.cu / decode_m64.cu: bf16 queries over a bf16 or fp8 cache.
void launchDecodeM16(bool fp8, const MlaArgs& a, unsigned grid_x, cudaStream_t stream);
void launchDecodeM64(bool fp8, const MlaArgs& a, unsigned grid_x, cudaStream_t stream);

}  // namespace attn::cuda::mla
