// The Hopper (sm_90a) quantized forward: per-head-dim entry points (flash_fwd_sm90_quant_hd*.cu).
// The caller (csrc/cuda/quant/quant_forward.cu) picks it over the sm_80 kernel; both read the same
// preprocessed workspace.
#pragma once
#include <cuda_runtime.h>

#include "../../common/quant.h"
#include "../quant/quant_internal.h"

namespace attn::cuda::hopper {

void launchQuantFwdSm90Hd64(const quant::QuantArgs& a, QuantMode mode, cudaStream_t stream);
void launchQuantFwdSm90Hd128(const quant::QuantArgs& a, QuantMode mode, cudaStream_t stream);

}  // namespace attn::cuda::hopper
