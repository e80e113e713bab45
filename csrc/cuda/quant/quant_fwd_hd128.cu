// Head dim 128 instantiations of the quantized forward kernel: FP8 P.V (sm_89+) and f16 P.V.
#include "quant_kernel.cuh"

namespace attn::cuda::quant {

void launchQuantFwdHd128(const QuantArgs& a, QuantMode mode, cudaStream_t stream) {
  if (mode == QuantMode::Int8Fp8) {
    launchQuantFwd<128, true>(a, stream);
  } else {
    launchQuantFwd<128, false>(a, stream);
  }
}

}  // namespace attn::cuda::quant
