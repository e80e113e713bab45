// Runs the quantized preprocessing's layout code (csrc/cuda/quant/prep_layout.cuh) on the host and
// checks what its comments claim, setting threadIdx (warp_lanes.h) lane by lane. Built and run by
// test/prep_layout.cpu.test.ts; prints one line per check ending in "0 bad" when it holds, and
// exits 1 otherwise.
//   V: VChunks + vtOffset (+ fp8KeySlot) place every (channel, key) of a block exactly once; each
//      warp store instruction touches at most one 32-bit word per shared-memory bank; after the copy
//      out (whole, aligned 16-byte chunks) every byte sits where the attention kernels read it.
#include <cstdio>
#include <map>
#include <set>
#include <vector>

#include "warp_lanes.h"
#include "../../csrc/cuda/quant/prep_layout.cuh"

using namespace attn::cuda::quant;
constexpr int kWarps = 4;  // quant_internal.h's (not included: it needs the CUDA headers)
constexpr int kBlockN = attn::kQuantKeyBlock;

template <int D, int kVBytes>
int checkV() {
  using V = VChunks<D, kWarps>;
  constexpr int kBytes = D * kBlockN * kVBytes;
  int bad = 0, stores = 0;
  std::map<std::pair<int, int>, int> placed;  // (channel, key) -> byte offset
  std::set<int> used;
  for (int w = 0; w < kWarps; ++w)
    for (int i = 0; i < V::kUnits; ++i)
      for (int e = 0; e < 8; ++e) {  // one store instruction of warp w
        std::map<int, std::set<int>> words;  // bank -> 32-bit words
        for (int lane = 0; lane < 32; ++lane) {
          threadIdx.x = w * 32 + lane;
          const int c = V::column() * 8 + e, jj = V::key(i);
          const int off = kVBytes == 1 ? vtOffset<1>(c, fp8KeySlot(jj)) : vtOffset<2>(c, 2 * jj);
          bad += c < 0 || c >= D || jj < 0 || jj >= kBlockN || off < 0 || off + kVBytes > kBytes || off % kVBytes != 0;
          bad += !placed.emplace(std::make_pair(c, jj), off).second;  // each (channel, key) once
          for (int b = 0; b < kVBytes; ++b) bad += !used.insert(off + b).second;  // no byte twice
          words[(off / 4) % 32].insert(off / 4);
        }
        ++stores;
        for (const auto& [bank, ws] : words) bad += ws.size() > 1;  // a bank conflict
      }
  bad += static_cast<int>(placed.size()) != D * kBlockN;
  // End to end: tag each staged byte with its (channel, key, byte), run quantKvBlock's copy-out loop
  // (16-byte chunk q of row c from vtOffset(c, 16 q), which must be aligned), and compare the block's
  // V^T with the unswizzled layout the attention kernels read: row c, byte fp8KeySlot(jj) (fp8) or
  // 2 jj + byte (f16) (main's `c * kBlockN + fp8KeySlot(jj)` / `c * kBlockN + jj`).
  std::vector<int> staged(kBytes, -1), global(kBytes, -2);
  for (const auto& [ck, off] : placed)
    for (int b = 0; b < kVBytes; ++b) staged[off + b] = (ck.first * kBlockN + ck.second) * kVBytes + b;
  constexpr int kRowChunks = kBlockN * kVBytes / 16;
  for (int u = 0; u < D * kRowChunks; ++u) {
    const int c = u / kRowChunks, q = u % kRowChunks, src = vtOffset<kVBytes>(c, q * 16);
    bad += src % 16 != 0;
    for (int b = 0; b < 16; ++b) global[c * kBlockN * kVBytes + q * 16 + b] = staged[src + b];
  }
  static const int kSlot[16] = {0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15};  // the P fragment order
  for (int c = 0; c < D; ++c)
    for (int jj = 0; jj < kBlockN; ++jj)
      for (int b = 0; b < kVBytes; ++b) {
        const int at = c * kBlockN * kVBytes + (kVBytes == 1 ? (jj & ~15) + kSlot[jj & 15] : 2 * jj + b);
        bad += global[at] != (c * kBlockN + jj) * kVBytes + b;
      }
  std::printf("V D %d %s: %d stores, %d bad\n", D, kVBytes == 1 ? "fp8" : "f16", stores, bad);
  return bad;
}

int main() {  // deterministic: the seed runNative passes is not used
  const int bad = checkV<128, 1>() + checkV<128, 2>() + checkV<64, 1>() + checkV<64, 2>();
  return bad == 0 ? 0 : 1;
}
