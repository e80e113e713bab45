// Paged attention over a quantized (fp8e4m3 / int8) cache, head_dim 256, f16 and bf16 queries.
#include "../../common/error.h"
#include "decode_quant_kernel.cuh"

namespace attn::cuda::paged {

void launchDecodeQuantHd256(DType dtype, const DecodeArgs& a, cudaStream_t stream) {
  switch (dtype) {
    case DType::F16: launchPagedDecodeQuant<__half, 256>(a, stream); return;
    case DType::BF16: launchPagedDecodeQuant<__nv_bfloat16, 256>(a, stream); return;
    default: throwRange(std::string("pagedAttention: unsupported dtype ") + dtypeName(dtype));
  }
}

}  // namespace attn::cuda::paged
