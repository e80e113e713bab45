// Runs the CUDA preprocessing's lane-split rotation (csrc/cuda/quant/rotate_row.cuh) on the host:
// 32 threads stand for a warp's lanes (warp_lanes.h: a barrier carries __shfl_xor_sync, the rounded
// adds are plain float adds). Every lane layout the kernels use is checked bit for bit against the
// CPU backend's rotateRow (csrc/common/quant.h) on random rows. Built and run by
// test/rotate_row.cpu.test.ts; prints one line per layout and exits 1 on any mismatch.
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "warp_lanes.h"
#include "../../csrc/cuda/quant/rotate_row.cuh"

// One warp of D / kPer lanes per row (32 / (D / kPer) rows): the device version against the CPU's.
template <int kPer, int D>
int check(unsigned seed) {
  constexpr int kLanesPerRow = D / kPer, kRows = 32 / kLanesPerRow;
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> in(kRows * D), out(kRows * D, -1.0f);
  for (float& v : in) v = normal(gen);
  runWarp([&](int l) {
    const int row = l / kLanesPerRow, chunk = l % kLanesPerRow;
    float x[kPer];
    for (int e = 0; e < kPer; ++e) x[e] = in[row * D + chunk * kPer + e];
    attn::cuda::quant::rotateRowLanes<kPer, D>(x, chunk);
    for (int e = 0; e < kPer; ++e) out[row * D + chunk * kPer + e] = x[e];
  });
  int bad = 0;
  for (int r = 0; r < kRows; ++r) {
    std::vector<float> ref(in.begin() + r * D, in.begin() + (r + 1) * D);
    attn::rotateRow(ref.data(), D);
    for (int c = 0; c < D; ++c) bad += ref[c] != out[r * D + c] ? 1 : 0;
  }
  std::printf("kPer %d D %d: %d of %d values differ\n", kPer, D, bad, kRows * D);
  return bad;
}

int main(int argc, char** argv) {
  const unsigned seed = argc > 1 ? static_cast<unsigned>(std::stoul(argv[1])) : 1u;
  // K chunks (8 channels a lane) at d128 and d64; Q rows (a quad each: D / 4 a lane) at d128 and d64.
  const int bad = check<8, 128>(seed) + check<8, 64>(seed + 1) + check<32, 128>(seed + 2) + check<16, 64>(seed + 3);
  return bad == 0 ? 0 : 1;
}
