// Head dim 64 instantiations of the Hopper quantized forward (one per mode).
#include "flash_fwd_sm90_quant.cuh"
#include "flash_fwd_sm90_quant.h"

namespace attn::cuda::hopper {

void launchQuantFwdSm90Hd64(const quant::QuantArgs& a, QuantMode mode, cudaStream_t stream) {
  launchQuantFwdSm90ForMode<64>(a, mode, stream);
}

}  // namespace attn::cuda::hopper
