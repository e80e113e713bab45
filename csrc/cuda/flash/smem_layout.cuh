// Shared-memory layout of one [kRows x kCols] tile of 16-bit elements, XOR-swizzled so that
// ldmatrix (8 lanes reading the same 16-byte column chunk of 8 consecutive rows) and the 16-byte
// cp.async stores hit 8 distinct bank groups.
//
// The tile is cut into column blocks of 64 elements (128-byte rows) when kCols % 64 == 0, else of
// 32 elements (64-byte rows, head dims 32 and 96). Each column block is a dense [kRows][block]
// array; inside it the 16-byte chunk index of row r is XORed with
//   r & 7          for 128-byte rows (8 rows fill the 8 chunk positions of a 128-byte line)
//   (r >> 1) & 3   for 64-byte rows  (two rows share a 128-byte line, rows r and r^1 differ in
//                                     the line half, so only 4 chunk positions need permuting)
// Both depend only on r & 7, so any 8-row group starting at a multiple of 8 is conflict-free.
#pragma once
#include <cstdint>

namespace attn::cuda::flash {

template <int kRows, int kCols>
struct SwizzledTile {
  static_assert(kCols % 32 == 0, "head dim must be a multiple of 32");
  static_assert(kRows % 16 == 0, "tile rows must be a multiple of 16");

  static constexpr int kTileRows = kRows;
  static constexpr int kBlockCols = (kCols % 64 == 0) ? 64 : 32;
  static constexpr int kChunksPerBlockRow = kBlockCols / 8;  // 16-byte chunks: 8 or 4
  static constexpr int kRowBytes = kBlockCols * 2;           // within a column block
  static constexpr int kBlockBytes = kRows * kRowBytes;
  static constexpr int kChunksPerRow = kCols / 8;
  static constexpr int kBytes = kRows * kCols * 2;

  __host__ __device__ static constexpr int rowXor(int r) {
    return kChunksPerBlockRow == 8 ? (r & 7) : ((r >> 1) & 3);
  }

  // Byte offset of 16-byte chunk c (0 .. kCols/8 - 1) of row r. General form, used by the
  // global<->shared copies where r and c are runtime values anyway.
  __device__ static __forceinline__ int chunkOffset(int r, int c) {
    const int blk = c / kChunksPerBlockRow;
    const int cc = c % kChunksPerBlockRow;
    return blk * kBlockBytes + r * kRowBytes + ((cc ^ rowXor(r)) << 4);
  }

  // ldmatrix.x4 addressing. A 16x16 sub-tile at (row0, chunk0), row0 % 16 == 0 and chunk0 even,
  // is read by lane l at row row0 + laneRow, chunk chunk0 + laneChunk (laneRow < 16,
  // laneChunk < 2). Since row0 % 16 == 0, rowXor(row0 + laneRow) == rowXor(laneRow), and since
  // chunk0 is even, (chunk0 % n + laneChunk) ^ x == (chunk0 % n) ^ (laneChunk ^ x). With the tile
  // base 128-byte aligned, address bits [4, 7) hold the swizzled chunk and everything else added
  // is a multiple of 128, so each sub-tile address is one per-lane register XOR a constant plus an
  // immediate: no per-load index math and a single live register per operand.
  __device__ static __forceinline__ uint32_t laneBase(uint32_t tile_base, int laneRow, int laneChunk) {
    return tile_base + laneRow * kRowBytes + ((laneChunk ^ rowXor(laneRow)) << 4);
  }
  // row0 / chunk0 are indices of fully unrolled loops, so both terms fold to constants.
  __device__ static __forceinline__ uint32_t subtileAddr(uint32_t lane_base, int row0, int chunk0) {
    const int blk = chunk0 / kChunksPerBlockRow;
    const int cc = chunk0 % kChunksPerBlockRow;
    return (lane_base ^ (cc << 4)) + blk * kBlockBytes + row0 * kRowBytes;
  }
  static_assert(kBlockBytes % 1024 == 0, "tile bases and sub-tile offsets keep bits [4, 10) free");
};

// Lane patterns of ldmatrix.x4 for the two operand shapes of m16n8k16 (see flash_kernel.cuh):
//  - "A pattern" (Q as the A operand, V through .trans): matrices (rows 0-7, k 0-7),
//    (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15).
//  - "B pattern" (K as the B operand of S = Q K^T): matrices (n 0-7, k 0-7), (n 0-7, k 8-15),
//    (n 8-15, k 0-7), (n 8-15, k 8-15), i.e. b0/b1 of n-tile 0, then b0/b1 of n-tile 1.
__device__ __forceinline__ int laneRowA(int lane) { return lane & 15; }
__device__ __forceinline__ int laneChunkA(int lane) { return lane >> 4; }
__device__ __forceinline__ int laneRowB(int lane) { return (lane & 7) + ((lane >> 4) << 3); }
__device__ __forceinline__ int laneChunkB(int lane) { return (lane >> 3) & 1; }

}  // namespace attn::cuda::flash
