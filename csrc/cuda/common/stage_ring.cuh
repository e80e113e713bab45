// The stages of a cp.async pipeline of run-time depth `stages` (the decode kernels): while tile it
// is read from stage `read`, tile it + stages - 1 loads into stage `write`, the one tile it - 1
// has just freed.
#pragma once
#include <cuda_runtime.h>

namespace attn::cuda {

struct StageRing {
  int stages;
  int read = 0;
  int write;

  __device__ __forceinline__ explicit StageRing(int n) : stages(n), write(n - 1) {}
  // On to the next tile.
  __device__ __forceinline__ void advance() {
    read = read + 1 == stages ? 0 : read + 1;
    write = write + 1 == stages ? 0 : write + 1;
  }
};

}  // namespace attn::cuda
