// Paged prefill instantiations for head_dim 128 (f16, bf16): one file per head dim so the builds
// run in parallel.
#include "prefill_kernel.cuh"

namespace attn::cuda::paged {

void launchPrefillHd128(DType dtype, flash::FwdParams p, int max_rows_q, int heads_q, int batch, int num_sms,
                       cudaStream_t stream) {
  launchPrefillForDtype<flash::Hdim128Traits>(dtype, p, max_rows_q, heads_q, batch, num_sms, stream);
}

}  // namespace attn::cuda::paged
