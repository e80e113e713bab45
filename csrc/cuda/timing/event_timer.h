// Device time of back-to-back launches, measured by CUDA events on the launching stream. Used by
// the benchmark hooks only (scripts/), so JS call overhead stays out of the kernel figures.
#pragma once
#include <cuda_runtime.h>

#include <functional>

namespace attn::cuda {

// Runs launch() `iters` times on `stream` between two events, waits for the second, and returns
// the mean device milliseconds per launch. Blocks the calling thread.
float timeLaunches(cudaStream_t stream, int iters, const std::function<void()>& launch);

}  // namespace attn::cuda
