#pragma once
#include <cuda_runtime.h>

#include "../../common/tensor_ops_params.h"

namespace attn::cuda {

void copyStrided(const StridedCopyParams& p, cudaStream_t stream);
void fill(const FillParams& p, cudaStream_t stream);
void randomNormal(const RandomParams& p, cudaStream_t stream);

}  // namespace attn::cuda
