// The memory-read floor of the benchmarks: how long the GPU takes just to read a given number of
// bytes once, timed like the kernels it is compared with (timeLaunches). A decode call has to read
// its whole KV cache, so no decode kernel can beat this figure for the same bytes.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace attn::cuda {

struct ReadFloor {
  float ms;     // device ms per launch, best configuration
  int blocks;   // its grid
  int threads;  // its CTA size
};

// Reads `window_bytes` (a multiple of 16) from `data` per launch, `iters` launches back to back.
// windows == 1: every launch reads the same bytes (as a repeated benchmark call does: what fits
// in L2 may stay there); windows > 1: launch i reads window i % windows of `data`, which holds
// `windows` consecutive windows (cold reads once the windows outgrow L2). Tries a few grid shapes
// and returns the fastest. Blocks the calling thread.
ReadFloor timeReadFloor(const void* data, int64_t window_bytes, int windows, int iters, int num_sms, cudaStream_t stream);

}  // namespace attn::cuda
