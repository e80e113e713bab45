// The paged prefill launch shared by prefill_hd*.cu: the flash forward kernel (../flash) with the
// PagedKV source and the dense forward's tile shape of the head dim (fwd_tiles.cuh).
#pragma once
#include "../../common/error.h"
#include "../flash/fwd_tiles.cuh"
#include "prefill_internal.h"

namespace attn::cuda::paged {

template <typename T>
void launchPrefill(flash::FwdParams p, int max_rows_q, int heads_q, int batch, int num_sms, cudaStream_t stream) {
  const int num_m = (max_rows_q + T::kBlockM - 1) / T::kBlockM;
  p.lpt_group = flash::lptGroup(p.window_right, static_cast<int64_t>(heads_q) * batch, num_m, T::kMinBlocksPerSm,
                                num_sms);
  flash::launchFwdGrid<T, flash::PagedKV>(p, num_m, heads_q, batch, stream);
}

template <template <typename> class Traits>
void launchPrefillForDtype(DType dtype, const flash::FwdParams& p, int max_rows_q, int heads_q, int batch,
                           int num_sms, cudaStream_t stream) {
  switch (dtype) {
    case DType::F16: launchPrefill<Traits<__half>>(p, max_rows_q, heads_q, batch, num_sms, stream); return;
    case DType::BF16: launchPrefill<Traits<__nv_bfloat16>>(p, max_rows_q, heads_q, batch, num_sms, stream); return;
    default: throwRange(std::string("pagedAttention prefill: unsupported dtype ") + dtypeName(dtype));
  }
}

}  // namespace attn::cuda::paged
