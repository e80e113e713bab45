// Head dim 64 instantiations of the quantized forward kernel: FP8 Q.K and P.V (sm_89+), INT8 Q.K with FP8 P.V (sm_89+) or f16 P.V.
#include "quant_kernel.cuh"

namespace attn::cuda::quant {

void launchQuantFwdHd64(const QuantArgs& a, QuantMode mode, cudaStream_t stream) {
  if (mode == QuantMode::Fp8) {
    launchQuantFwd<64, true, true>(a, stream);
  } else if (mode == QuantMode::Int8Fp8) {
    launchQuantFwd<64, true>(a, stream);
  } else {
    launchQuantFwd<64, false>(a, stream);
  }
}

}  // namespace attn::cuda::quant
