// Device time of back-to-back launches: captured into a CUDA graph and replayed between two CUDA
// events, so neither JS nor host launch overhead is in the figure (the torch peers in scripts/ are
// timed the same way). Used by the benchmark hooks only.
#pragma once
#include <cuda_runtime.h>

#include <functional>

namespace attn::cuda {

// Captures launch() `iters` times on `stream`, replays the graph once to warm up and once between
// two events, waits, and returns the mean device milliseconds per launch. Blocks the calling thread.
float timeLaunches(cudaStream_t stream, int iters, const std::function<void()>& launch);

}  // namespace attn::cuda
