// MLA decode kernel instantiations for 16 rows per CTA (bf16 and fp8 caches): one file per row count
// so the builds run in parallel.
#include "decode_kernel.cuh"

namespace attn::cuda::mla {

void launchDecodeM16(bool fp8, const MlaArgs& a, unsigned grid_x, cudaStream_t stream) {
  if (fp8) launchDecode<16, true>(a, grid_x, stream);
  else launchDecode<16, false>(a, grid_x, stream);
}

}  // namespace attn::cuda::mla
