// Internal to csrc/cuda/paged: the decode kernel's fixed shape, its argument block and the
// launchers each .cu file provides. Host-compilable (no device code here).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../../common/dtype.h"
#include "../../common/paged_params.h"

namespace attn::cuda::paged {

// Decode / paged-prefill CTA: 4 warps, 16 (query row, head) pairs, 64 keys per pipeline tile
// (16 per warp). Split chunks are whole tiles and at least kMinKeysPerSplit keys when the backend
// picks the split count.
constexpr int kDecodeThreads = 128;
constexpr int kDecodeWarps = 4;
constexpr int kDecodeRows = 16;
constexpr int kDecodeTileKeys = 64;
constexpr int kMinKeysPerSplit = 128;
constexpr int kMaxAutoSplits = 64;
constexpr int kMaxSplits = 65535;  // grid.y
constexpr int kFusedMaxSplits = kMaxAutoSplits;  // splits the in-kernel combine takes

// Pipeline stages (a runtime kernel argument). With more CTAs than SMs the kernel runs
// decodeStages(d) stages so that decodeCtasPerSm(d) CTAs share an SM; with at most one CTA per SM
// it runs decodeMaxStages(d) stages, using the SM's whole shared memory to keep as many bytes in
// flight. Shared memory: stages * 2 * 64 * head_dim * 2 bytes + the Q tile.
constexpr int decodeStages(int head_dim) { return head_dim == 64 ? 4 : 3; }
constexpr int decodeMaxStages(int head_dim) { return head_dim == 64 ? 8 : head_dim == 128 ? 6 : 3; }
constexpr int decodeCtasPerSm(int head_dim) { return head_dim == 64 ? 3 : head_dim == 128 ? 2 : 1; }
constexpr int decodeSmemBytes(int head_dim, int stages) {
  return stages * 2 * kDecodeTileKeys * head_dim * 2 + kDecodeRows * head_dim * 2;
}

struct DecodeArgs {
  const void* q;
  void* o;
  float* lse;  // final lse [total_q, heads_q] or null
  int64_t q_row_stride, q_head_stride;
  int64_t o_row_stride, o_head_stride;
  const int32_t* cu_q;  // null: one query per sequence
  const void* k_pages;
  const void* v_pages;
  int64_t page_stride, page_head_stride;
  const int32_t* block_table;
  int64_t block_table_stride;
  const int32_t* block_table_rows;  // [batch] or null (row b, or inline_rows[b] without seq_lens)
  const int32_t* seq_lens;          // [batch] or null: inline_lens
  // Without seq_lens: the sequences' table rows and lengths in the arguments themselves (batch <=
  // kPagedInlineBatch; read through __grid_constant__, no global load).
  int32_t inline_rows[kPagedInlineBatch];
  int32_t inline_lens[kPagedInlineBatch];
  int batch, total_q, heads_q, heads_kv, group, head_dim;
  int page_shift;  // log2(page_size)
  int mblocks;     // CTAs along the (query row, head) axis of one (sequence, kv head)
  float scale_log2;     // scale * log2(e), used without softcap
  float softcap_scale;  // scale / softcap
  float softcap_log2;   // softcap * log2(e)
  int has_softcap;
  const float* alibi;  // [heads_q] or null
  int window_left;     // < 0: unbounded
  int window_right;    // < 0: unbounded; causal already folded in (0)
  int num_splits;
  int num_sms;  // of the device, for the pipeline depth
  int stages;   // set by the launcher
  float* ws_o;    // [num_splits, total_q, heads_q, head_dim] (num_splits > 1)
  float* ws_lse;  // [num_splits, total_q, heads_q]
  unsigned* counters;  // per CTA row (grid.x), zero between launches: fused combine (split_combine.cuh); null: combine.cu
  int cluster;         // set by the launcher: 1 = the splits of a CTA row are one cluster (clusterCombineRows)
  // Quantized cache only (see PagedAttnParams).
  int kv_fp8;  // 1: e4m3 pages, 0: int8 pages
  const float* k_scales;
  const float* v_scales;
  int64_t scale_page_stride, scale_head_stride;
  const float* k_smooth;  // [heads_kv][head_dim]
  const float* k_chan;    // [heads_kv][head_dim]: q is multiplied by it
  const float* v_chan;    // [heads_kv][head_dim]: the output is multiplied by it
};

// The quantized-cache kernel (decode_quant_kernel.cuh): per stage and warp, 16 keys of 8-bit K and
// V plus their 32 scales; the f16 Q tile first. Stages as above (shared SM / SM alone).
constexpr int decodeQuantStages(int head_dim) { return head_dim == 64 ? 5 : head_dim == 128 ? 4 : 3; }
constexpr int decodeQuantMaxStages(int head_dim) { return head_dim == 64 ? 14 : head_dim == 128 ? 12 : 6; }
constexpr int decodeQuantCtasPerSm(int head_dim) { return head_dim == 64 ? 4 : head_dim == 128 ? 3 : 2; }
constexpr int decodeQuantSmemBytes(int head_dim, int stages) {
  return kDecodeRows * (head_dim + 8) * 2 + stages * kDecodeWarps * (2 * 16 * head_dim + 2 * 16 * 4);
}

// One file per head_dim (decode_hd*.cu); each dispatches F16 / BF16.
void launchDecodeHd64(DType dtype, const DecodeArgs& a, cudaStream_t stream);
void launchDecodeHd128(DType dtype, const DecodeArgs& a, cudaStream_t stream);
void launchDecodeHd256(DType dtype, const DecodeArgs& a, cudaStream_t stream);

// combine.cu: merges the num_splits partial outputs into o (and lse).
void launchCombine(DType dtype, const DecodeArgs& a, cudaStream_t stream);

// Quantized cache (fp8e4m3 / int8 pages): decode_quant_hd*.cu, one file per head dim, each
// dispatching the q dtype (F16 / BF16); the 8-bit type is a runtime argument.
void launchDecodeQuantHd64(DType dtype, const DecodeArgs& a, cudaStream_t stream);
void launchDecodeQuantHd128(DType dtype, const DecodeArgs& a, cudaStream_t stream);
void launchDecodeQuantHd256(DType dtype, const DecodeArgs& a, cudaStream_t stream);

}  // namespace attn::cuda::paged
