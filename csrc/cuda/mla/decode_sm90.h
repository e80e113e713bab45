// The Hopper (sm_90a) MLA decode kernel (decode_sm90.cuh): its shape, shared-memory plan and
// launcher. Host-compilable. It serves the compute-bound case only: bf16 cache, M = 64 (query row,
// head) pairs per CTA, pages of 16 keys or more; mla.cu sends everything else to the mma.sync kernel.
//
// CTA = 3 warpgroups (384 threads), the same (sequence, 64-row block, KV split) as the mma.sync
// kernel, so the split workspace and the combine are shared. Keys stream in tiles of 32 rows of 576
// through four stages, in column chunks of 64 (128-byte rows, 128-byte swizzle):
//   warpgroup 0 (producer): one thread issues the TMA copies (one per chunk and page piece);
//   warpgroups 1, 2 (consumers, w = 0, 1): the tiles alternate between them. Consumer w computes
//     S_t = Q K_t^T of its tiles t = w, w + 2, ... (wgmma m64n32k16, 36 k steps) and their softmax,
//     and writes P_t (bf16) over the tile's rope chunk; both add P_t V_t to their own 256 latent
//     columns of O (wgmma m64n256k16, P and V from shared memory, V read MN-major).
// Why 32-key tiles: with 64-key tiles (72 KB, as large as Q) only two stages fit, a stage is
// refilled only after both P V of its tile, and the next S waits for that copy (run 63, ncu: tensor
// pipe 45% busy, L2 52%, DRAM 44%). Four 36 KB stages keep two tiles landed ahead (run 64: +3-10%).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "mla_internal.h"

namespace attn::cuda::mla::sm90 {

constexpr int kThreads = 384;
constexpr int kTileKeys = 32;
constexpr int kChunks = kMlaRow / 64;              // 9 column chunks (8 latent + 1 rope)
constexpr int kQChunkBytes = 64 * 128;             // Q: 64 rows of 128 bytes per chunk
constexpr int kChunkBytes = kTileKeys * 128;       // a tile's chunk: 4096
constexpr int kTileBytes = kChunks * kChunkBytes;  // 36864
constexpr int kStages = 4;
constexpr int kMinPageSize = 16;  // TMA pieces of >= 16 rows (and 1024-byte aligned)
// Shared memory (from a 1024-aligned base): Q, the K/V stages, the running max and alpha of the
// last two tiles, the consumers' row sums, then the mbarriers (full and empty per stage).
constexpr int kOffKV = kChunks * kQChunkBytes;  // 73728
constexpr int kOffMax = kOffKV + kStages * kTileBytes;
constexpr int kOffAlpha = kOffMax + 2 * 64 * 4;
constexpr int kOffSum = kOffAlpha + 2 * 64 * 4;
constexpr int kOffBar = kOffSum + 2 * 64 * 4;
constexpr int kBars = 2 * kStages;
constexpr int kSmemBytes = kOffBar + 8 * kBars + 1024;  // + room to align the base to 1024
static_assert(kSmemBytes <= 227 * 1024, "shared memory");
static_assert(kChunkBytes == 64 * 64, "P (64 rows x 64 bytes) fills a tile's rope chunk");

// Whether this build holds the kernel's sm_90a image (false on builds without sm_90a).
bool decodeAvailable();

// kv_rows: rows of the layer's page pool (num_pages * page_size), the extent of the tensor map.
void launchDecode(const MlaArgs& a, int64_t kv_rows, int page_size, unsigned grid_x, cudaStream_t stream);

}  // namespace attn::cuda::mla::sm90
