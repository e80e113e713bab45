// Index maps of the quantized preprocessing (quant_prep.cu) that carry its layout choices: V's load
// order and shared-memory staging for the transposition, and the Q rows a warp takes. Device code
// only, but free of CUDA headers: test/native/prep_layout_lanes.cpp
// runs it on the host (threads as lanes, a barrier as the shuffle) and checks the properties the
// comments claim.
#pragma once
#include "../../common/quant.h"

namespace attn::cuda::quant {

// V's chunks (8 channels, 16 bytes) of a kQuantKeyBlock-key block as the quantize launch transposes
// them, kWarps warps: a warp's load covers 8 keys x 4 chunk columns (64 bytes of each key row), so
// its shared-memory stores of one channel reach 4 rows at once, which vtOffset's swizzle puts in
// distinct banks. (With 16 columns per load, the 16 rows one byte store reached shared one bank: a
// 16-way conflict on every V element.) Thread: column 4 * (warp % kColGroups) + lane % 4, keys
// lane / 4 + 8 * (warp / kColGroups + kKeySplits * i), i < kUnits.
template <int D, int kWarps>
struct VChunks {
  static constexpr int kChunks = D / 8;
  static constexpr int kColGroups = kChunks / 4;  // warps across a key row
  static constexpr int kKeySplits = kWarps / kColGroups;
  static constexpr int kUnits = kQuantKeyBlock / (8 * kKeySplits);
  static_assert(kChunks % 4 == 0 && kWarps % kColGroups == 0 && kUnits * 8 * kKeySplits == kQuantKeyBlock,
                "whole warps over whole key rows");
  __device__ static int column() { return 4 * ((threadIdx.x >> 5) % kColGroups) + (threadIdx.x & 3); }
  __device__ static int key(int i) { return ((threadIdx.x & 31) >> 2) + 8 * ((threadIdx.x >> 5) / kColGroups + kKeySplits * i); }
};

// Byte offset of (channel c, byte b of its V^T row) in a block's staging buffer: rows of
// kQuantKeyBlock * kVBytes bytes whose 16-byte chunks are XOR-swizzled by c / 8, so that VChunks'
// 4 columns (channels 8 apart) store into 4 different chunks, and the copy out still reads whole
// chunks (bytes b .. b + 15 of a chunk stay together).
template <int kVBytes>
__device__ __forceinline__ int vtOffset(int c, int b) {
  constexpr int kRowBytes = kQuantKeyBlock * kVBytes, kRowChunks = kRowBytes / 16;
  return c * kRowBytes + ((((b >> 4) ^ (c >> 3)) & (kRowChunks - 1)) << 4) + (b & 15);
}

// Position of key jj (0..63) of a block in the fp8 V^T row: the mma.m16n8k32 A fragment of P
// holds, per 16-key group, keys 2t, 2t+1, 8+2t, 8+2t+1 of the S accumulators at k = 4t..4t+3,
// so V's keys are stored in that order (a permutation of the contraction axis).
__device__ __forceinline__ int fp8KeySlot(int jj) {
  const int r = jj & 15;
  const int slot = r < 8 ? 4 * (r >> 1) + (r & 1) : 4 * ((r - 8) >> 1) + 2 + (r & 1);
  return (jj & ~15) + slot;
}

// (token, head) rows of Q per warp (in flight at once: 4 KB at d128, within the K/V CTAs' registers).
constexpr int kQRows = 16;

}  // namespace attn::cuda::quant
