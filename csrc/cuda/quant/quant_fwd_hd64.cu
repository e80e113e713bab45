// Head dim 64 instantiations of the quantized forward kernel: FP8 P.V (sm_89+) and f16 P.V.
#include "quant_kernel.cuh"

namespace attn::cuda::quant {

void launchQuantFwdHd64(const QuantArgs& a, QuantMode mode, cudaStream_t stream) {
  if (mode == QuantMode::Int8Fp8) {
    launchQuantFwd<64, true>(a, stream);
  } else {
    launchQuantFwd<64, false>(a, stream);
  }
}

}  // namespace attn::cuda::quant
