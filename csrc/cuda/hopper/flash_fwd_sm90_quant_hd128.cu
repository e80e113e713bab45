// Head dim 128 instantiations of the Hopper quantized forward (one per mode).
#include "flash_fwd_sm90_quant.cuh"
#include "flash_fwd_sm90_quant.h"

namespace attn::cuda::hopper {

void launchQuantFwdSm90Hd128(const quant::QuantArgs& a, QuantMode mode, cudaStream_t stream) {
  launchQuantFwdSm90ForMode<128>(a, mode, stream);
}

}  // namespace attn::cuda::hopper
