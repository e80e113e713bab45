// Paged attention kernel instantiations for head_dim 256 (f16, bf16): one file per head_dim so
// the builds run in parallel.
#include "../../common/error.h"
#include "decode_kernel.cuh"

namespace attn::cuda::paged {

void launchDecodeHd256(DType dtype, const DecodeArgs& a, cudaStream_t stream) {
  switch (dtype) {
    case DType::F16: launchPagedDecode<__half, 256>(a, stream); return;
    case DType::BF16: launchPagedDecode<__nv_bfloat16, 256>(a, stream); return;
    default: throwRange(std::string("pagedAttention: unsupported dtype ") + dtypeName(dtype));
  }
}

}  // namespace attn::cuda::paged
