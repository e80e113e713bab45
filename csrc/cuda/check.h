// Every CUDA runtime call goes through ATTN_CUDA_CHECK; a failure becomes attn::Error carrying
// the CUDA error name and text, which the binding rethrows as a JS Error.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../common/error.h"

namespace attn::cuda {

[[noreturn]] inline void throwCuda(cudaError_t err, const char* what, const char* file, int line) {
  std::string msg = std::string("CUDA error ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err) +
                    " (" + what + " at " + file + ":" + std::to_string(line) + ")";
  throw Error(ErrorKind::Error, msg);
}

}  // namespace attn::cuda

#define ATTN_CUDA_CHECK(expr)                                                   \
  do {                                                                          \
    cudaError_t attn_err_ = (expr);                                             \
    if (attn_err_ != cudaSuccess) ::attn::cuda::throwCuda(attn_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports a bad launch configuration at once (not at the next sync).
#define ATTN_CUDA_CHECK_LAUNCH() ATTN_CUDA_CHECK(cudaGetLastError())
