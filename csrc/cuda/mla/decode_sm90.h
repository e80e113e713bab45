// The Hopper (sm_90a) MLA decode kernel (decode_sm90.cuh): its shape, shared-memory plan and
// launcher. Host-compilable. It serves M = 64 (query row, head) pairs per CTA over pages of 16 keys
// or more: the compute-bound bf16 case, and every fp8 case (mla.cu sends the rest to the mma.sync
// kernel).
//
// CTA = 3 warpgroups (384 threads), the same (sequence, 64-row block, KV split) as the mma.sync
// kernel, so the split workspace and the combine are shared. Keys stream in tiles of 32 rows of 576
// through four stages (three with an fp8 cache), in column chunks of 64 (128-byte rows, 128-byte
// swizzle):
//   warpgroup 0 (producer): bf16 cache: one thread issues the TMA copies (one per chunk and page
//     piece). fp8 cache: one thread bulk-copies 16-key e4m3 pieces and their scales into four slots,
//     two tiles ahead, and all 128 threads write each tile into its stage as bf16 (scale x e4m3,
//     rounded once) in the bf16 layout, so the consumers do not know the cache is fp8;
//   warpgroups 1, 2 (consumers, w = 0, 1): the tiles alternate between them. Consumer w computes
//     S_t = Q K_t^T of its tiles t = w, w + 2, ... (wgmma m64n32k16, 36 k steps; with a bf16 cache
//     the last 8 take Q from registers) and their softmax, and writes P_t (bf16) over the tile's
//     rope chunk; both add P_t V_t to their own 256 latent
//     columns of O (wgmma m64n256k16, P and V from shared memory, V read MN-major).
// Why 32-key tiles: with 64-key tiles (72 KB, as large as Q) only two stages fit, a stage is
// refilled only after both P V of its tile, and the next S waits for that copy (run 63, ncu: tensor
// pipe 45% busy, L2 52%, DRAM 44%). Four 36 KB stages keep two tiles landed ahead (run 64: +3-10%).
// Why an fp8 tile is widened in shared memory and not in the consumers' registers: wgmma takes
// e4m3 only against e4m3 queries, and the mma.sync kernel's in-step conversion left its fp8 cache
// slower than bf16 (run 83).
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
constexpr int kMinPageSize = 16;                // TMA pieces of >= 16 rows (and 1024-byte aligned)
constexpr int kOffKV = kChunks * kQChunkBytes;  // 73728
// fp8 staging: 16-key pieces (one page's rows, contiguous in the pool) of e4m3 rows and their
// (latent, rope) scales.
constexpr int kPieceKeys = 16;
constexpr int kSlots8 = 4;
constexpr int kPieceBytes = kPieceKeys * kMlaRow;  // 9216
constexpr int kPieceScaleBytes = kPieceKeys * 8;   // 128

// Shared memory (from a 1024-aligned base): Q, the K/V stages, (fp8) the e4m3 slots and their
// scales, the running max and alpha of the last two tiles, the consumers' row sums, then the
// mbarriers (full and empty per stage, (fp8) full per slot).
template <bool kFp8>
struct Plan {
  static constexpr int kStages = kFp8 ? 3 : 4;
  static constexpr int kOffStage8 = kOffKV + kStages * kTileBytes;
  static constexpr int kOffScale8 = kOffStage8 + (kFp8 ? kSlots8 * kPieceBytes : 0);
  static constexpr int kOffMax = kOffScale8 + (kFp8 ? kSlots8 * kPieceScaleBytes : 0);
  static constexpr int kOffAlpha = kOffMax + 2 * 64 * 4;
  static constexpr int kOffSum = kOffAlpha + 2 * 64 * 4;
  static constexpr int kOffBar = kOffSum + 2 * 64 * 4;
  static constexpr int kBars = 2 * kStages + (kFp8 ? kSlots8 : 0);
  static constexpr int kSmemBytes = kOffBar + 8 * kBars + 1024;  // + room to align the base to 1024
  static_assert(kSmemBytes <= 227 * 1024, "shared memory");
};
static_assert(kChunkBytes == 64 * 64, "P (64 rows x 64 bytes) fills a tile's rope chunk");
static_assert(kTileKeys == 2 * kPieceKeys && kSlots8 == 4, "the fp8 slots hold two tiles");

// Whether this build holds the kernel's sm_90a image (false on builds without sm_90a).
bool decodeAvailable();

// Shared memory the kernel needs for a bf16 or an fp8 cache.
int smemBytes(bool fp8);

// kv_rows: rows of the layer's page pool (num_pages * page_size), the extent of the bf16 tensor map.
void launchDecode(bool fp8, const MlaArgs& a, int64_t kv_rows, int page_size, unsigned grid_x, cudaStream_t stream);

}  // namespace attn::cuda::mla::sm90
