// Internal to csrc/cuda/paged: the paged prefill's launchers, one file per head dim
// (prefill_hd*.cu), each dispatching F16 / BF16. CUDA sources only (FwdParams is device-side).
#pragma once
#include <cuda_runtime.h>

#include "../../common/dtype.h"
#include "../flash/fwd_common.cuh"

namespace attn::cuda::paged {

// p: every field but lpt_group set (prefill.cu). Launches the (query blocks of max_rows_q rows,
// heads_q, batch) grid of the flash forward kernel with the PagedKV source.
void launchPrefillHd64(DType dtype, flash::FwdParams p, int max_rows_q, int heads_q, int batch, int num_sms,
                       cudaStream_t stream);
void launchPrefillHd128(DType dtype, flash::FwdParams p, int max_rows_q, int heads_q, int batch, int num_sms,
                        cudaStream_t stream);
void launchPrefillHd256(DType dtype, flash::FwdParams p, int max_rows_q, int heads_q, int batch, int num_sms,
                        cudaStream_t stream);

}  // namespace attn::cuda::paged
