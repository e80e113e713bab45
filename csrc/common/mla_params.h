// Parameters of multi-head latent attention (MLA, DeepSeek-V2/V3) over a paged latent cache.
//
// The cache holds, per token, one row of kMlaRow = 576 elements: the compressed latent c (512)
// followed by the decoupled rope key k_r (64). Every query head reads the same row (one latent
// stream per sequence), so a page is [page_size, 576]; per layer the pool is
// [num_pages, page_size, 576] and token t of a sequence lives in page
// block_table[row * block_table_stride + t / page_size], slot t % page_size.
//
// Storage: f32 / f16 / bf16 (rows stored as given), or fp8 e4m3 with two float32 scales per token
// (one for the 512 latent channels, one for the 64 rope channels: the rope key has its own range),
// in a separate [num_pages, page_size, 2] array. Quantization on append: scale = amax / 448, stored
// value = e4m3(x / scale) (round to nearest even, saturating); the dequantized value is
// scale * e4m3 value.
//
// Attention with absorbed weights: queries arrive already projected into latent space,
// q = [q_latent (512), q_rope (64)], so score(h, t) = (q_latent . c_t + q_rope . k_r,t) * scale
// (then softcap if set), and the output is the softmax-weighted sum of the latents c_t (512 wide,
// still in latent space: the caller applies W_UV). Query row r of sequence b (r in [0, nq_b)) sits
// at position seq_lens[b] - nq_b + r; causal masking is bottom-right aligned as in paged_params.h.
#pragma once
#include <cstdint>

#include "dtype.h"

namespace attn {

constexpr int kMlaLatent = 512;
constexpr int kMlaRope = 64;
constexpr int kMlaRow = kMlaLatent + kMlaRope;  // 576
constexpr float kFp8E4m3Max = 448.0f;

// One layer's view of the latent page pool.
struct MlaCacheView {
  DType dtype = DType::BF16;     // storage: F32, F16, BF16 or FP8E4M3
  void* pages = nullptr;         // this layer's [num_pages, page_size, 576]
  float* scales = nullptr;       // FP8E4M3 only: this layer's [num_pages, page_size, 2]
  int64_t num_pages = 0;
  int page_size = 0;             // a power of two
  const int32_t* block_table = nullptr;       // [rows, block_table_stride]
  int block_table_stride = 0;
  const int32_t* block_table_rows = nullptr;  // [batch]: table row of sequence b; null = row b
};

// Writes new tokens: token r of sequence b (r in [0, cu_new[b+1] - cu_new[b])) goes to position
// start_pos[b] + r. latent is [total_new, 512] (or [total_new, 576] with rope == null, the rope
// key in columns 512..575); rope is [total_new, 64]. Element strides; the last dim is contiguous.
struct MlaAppendParams {
  DType in_dtype = DType::BF16;  // of latent and rope
  const void* latent = nullptr;
  int64_t latent_row_stride = 0;
  const void* rope = nullptr;    // null: the rope key is latent[:, 512:576]
  int64_t rope_row_stride = 0;
  MlaCacheView cache;
  const int32_t* cu_new = nullptr;     // [batch + 1]
  const int32_t* start_pos = nullptr;  // [batch]
  int batch = 0;
  int total_new = 0;
};

// Decode (one query row per sequence) or prefill / multi-token decode (cu_seqlens_q set).
struct MlaAttnParams {
  DType dtype = DType::BF16;  // of q and o (the cache's compute dtype)
  bool force_mma = false;     // CUDA, tests and benchmarks: the mma.sync kernel even where the sm_90a one applies
  const void* q = nullptr;    // [total_q, heads, 576]
  void* o = nullptr;          // [total_q, heads, 512]
  float* lse = nullptr;       // [total_q, heads] natural log, may be null
  int64_t q_row_stride = 0, q_head_stride = 0;
  int64_t o_row_stride = 0, o_head_stride = 0;
  const int32_t* cu_seqlens_q = nullptr;  // [batch + 1]; null = one query per sequence
  const int32_t* seq_lens = nullptr;      // [batch] cached tokens, the queries' own included
  MlaCacheView cache;

  int batch = 0;
  int total_q = 0;
  int max_seqlen_q = 0;
  int max_seqlen_k = 0;
  int heads = 0;

  float scale = 1.0f;
  float softcap = 0.0f;  // 0 = off
  bool causal = true;

  // Split-KV (CUDA). num_splits <= 0: the backend picks. Workspace (caller-owned) float32:
  // [num_splits, total_q, heads, 512] partial outputs + [num_splits, total_q, heads] lse.
  int num_splits = 0;
  float* workspace = nullptr;
  int64_t workspace_floats = 0;
};

// Copies whole pages src[i] -> dst[i] of every layer (and their fp8 scales): copy-on-write.
// Done with attn::PageCopyParams over the pool and the scale array (see paged_params.h).

}  // namespace attn
