// The Hopper (sm_90a) MLA decode kernel (decode_sm90.cuh): its shape, shared-memory plan and
// launcher. Host-compilable. It serves the compute-bound case only: bf16 cache, M = 64 (query row,
// head) pairs per CTA, pages of 16 keys or more; mla.cu sends everything else to the mma.sync kernel.
//
// CTA = 3 warpgroups (384 threads), the same (sequence, 64-row block, KV split) as the mma.sync
// kernel, so the split workspace and the combine are shared. Keys stream in tiles of 64 rows of 576
// through two stages; per tile, in column chunks of 64 (128-byte rows, 128-byte swizzle):
//   warpgroup 0 (producer): one thread issues the TMA copies (one per chunk and page piece);
//   warpgroups 1, 2 (consumers, w = 0, 1): S_w = Q K[32 w, 32 w + 32)^T (wgmma m64n32k16, 36 k
//     steps), row maxima exchanged through shared memory, P_w = exp2(S_w - m) (bf16) written to
//     shared memory, then O[:, 256 w, +256) += P V[:, 256 w, +256) (wgmma m64n256k16, P [64 x 64]
//     and V both from shared memory; V = the tile's latent columns, read MN-major).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "mla_internal.h"

namespace attn::cuda::mla::sm90 {

constexpr int kThreads = 384;
constexpr int kTileKeys = 64;
constexpr int kChunks = kMlaRow / 64;                  // 9 column chunks (8 latent + 1 rope)
constexpr int kChunkBytes = kTileKeys * 128;           // 64 rows of 128 bytes: 8192
constexpr int kTileBytes = kChunks * kChunkBytes;      // 73728 (Q has the same shape)
constexpr int kStages = 2;
constexpr int kMinPageSize = 16;                       // TMA pieces of >= 16 rows (and 1024-byte aligned)
// Shared memory (from a 1024-aligned base): Q, the K/V stages, P [64 x 64] bf16, row maxima and sums
// of both consumers, then the mbarriers (full per stage and chunk, empty per stage).
constexpr int kOffKV = kTileBytes;
constexpr int kOffP = kOffKV + kStages * kTileBytes;
constexpr int kOffMax = kOffP + kChunkBytes;
constexpr int kOffSum = kOffMax + 2 * 64 * 4;
constexpr int kOffBar = kOffSum + 2 * 64 * 4;
constexpr int kBars = kStages * (kChunks + 1);
constexpr int kSmemBytes = kOffBar + 8 * kBars + 1024;  // + room to align the base to 1024
static_assert(kSmemBytes <= 227 * 1024, "shared memory");

// Whether this build holds the kernel's sm_90a image (false on builds without sm_90a).
bool decodeAvailable();

// kv_rows: rows of the layer's page pool (num_pages * page_size), the extent of the tensor map.
void launchDecode(const MlaArgs& a, int64_t kv_rows, int page_size, unsigned grid_x, cudaStream_t stream);

}  // namespace attn::cuda::mla::sm90
