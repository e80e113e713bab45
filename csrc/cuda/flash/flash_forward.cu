// Capability check and head-dim dispatch of the dense forward. The kernels themselves live in
// flash_fwd_hdim*.cu (one translation unit per head dim).
#include "flash_forward.h"

#include <cstdint>
#include <string>

#include "../../common/env_flag.h"
#include "../../common/error.h"
#include "../hopper/flash_fwd_sm90.h"
#include "flash_fwd_hdims.h"

namespace attn::cuda {

namespace {

bool fail(std::string* why, const std::string& msg) {
  if (why != nullptr) *why = msg;
  return false;
}

// cp.async moves 16-byte chunks: every row start must be 16-byte aligned, i.e. the base pointer
// 16-byte aligned and every stride that is actually used a multiple of 8 elements.
bool stridesAligned(const void* base, int64_t batch_stride, bool batch_used, int64_t row_stride, bool row_used,
                    int64_t head_stride, bool head_used) {
  if (reinterpret_cast<uintptr_t>(base) % 16 != 0) return false;
  if (batch_used && batch_stride % 8 != 0) return false;
  if (row_used && row_stride % 8 != 0) return false;
  if (head_used && head_stride % 8 != 0) return false;
  return true;
}

}  // namespace

bool flashForwardSupported(const AttnParams& p, int sm, std::string* why) {
  if (sm < 80) return fail(why, "flash forward needs compute capability 8.0+ (got " + std::to_string(sm) + ")");
  if (p.dtype != DType::F16 && p.dtype != DType::BF16) {
    return fail(why, std::string("flash forward supports f16 and bf16, not ") + dtypeName(p.dtype));
  }
  switch (p.head_dim) {
    case 32: case 64: case 96: case 128: case 256: break;
    default:
      return fail(why, "flash forward supports head_dim 32, 64, 96, 128 and 256, not " + std::to_string(p.head_dim));
  }
  if (p.heads_q <= 0 || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) {
    return fail(why, "heads_q must be a positive multiple of heads_kv");
  }
  if ((p.cu_seqlens_q == nullptr) != (p.cu_seqlens_k == nullptr)) {
    return fail(why, "cu_seqlens_q and cu_seqlens_k must be both set or both null");
  }
  if (p.heads_q > 65535 || p.batch > 65535) return fail(why, "flash forward supports at most 65535 heads and batches");
  const bool varlen = p.cu_seqlens_q != nullptr;
  const bool batch_used = !varlen && p.batch > 1;
  const bool q_heads_used = p.heads_q > 1;
  const bool kv_heads_used = p.heads_kv > 1;
  if (!stridesAligned(p.q, p.q_batch_stride, batch_used, p.q_row_stride, true, p.q_head_stride, q_heads_used) ||
      !stridesAligned(p.k, p.k_batch_stride, batch_used, p.k_row_stride, true, p.k_head_stride, kv_heads_used) ||
      !stridesAligned(p.v, p.v_batch_stride, batch_used, p.v_row_stride, true, p.v_head_stride, kv_heads_used) ||
      !stridesAligned(p.o, p.o_batch_stride, batch_used, p.o_row_stride, true, p.o_head_stride, q_heads_used)) {
    return fail(why,
                "flash forward needs 16-byte aligned q/k/v/o and batch/row/head strides that are multiples of 8 "
                "elements");
  }
  return true;
}

void flashForward(const AttnParams& p, int sm, cudaStream_t stream) {
  std::string why;
  if (!flashForwardSupported(p, sm, &why)) throwRange(why);
  if (p.batch <= 0 || p.seqlen_q <= 0) return;  // no query rows: nothing to write
  if (hopper::flashForwardSm90Applies(p, sm)) {
    switch (p.head_dim) {
      case 64: hopper::flashFwdSm90Hdim64(p, stream); return;
      case 128: hopper::flashFwdSm90Hdim128(p, stream); return;
      case 256: hopper::flashFwdSm90Hdim256(p, stream); return;
    }
  }
  switch (p.head_dim) {
    case 32: flash::flashFwdHdim32(p, sm, stream); break;
    case 64: flash::flashFwdHdim64(p, sm, stream); break;
    case 96: flash::flashFwdHdim96(p, sm, stream); break;
    case 128: flash::flashFwdHdim128(p, sm, stream); break;
    case 256: flash::flashFwdHdim256(p, sm, stream); break;
    default: throwRange("unreachable head_dim");
  }
}

namespace hopper {

bool flashForwardSm90Applies(const AttnParams& p, int sm) {
  static const bool forced_off = envFlag("ATTN_CUDA_FORCE_SM80", false);
  const bool dim_ok = p.head_dim == 64 || p.head_dim == 128 || p.head_dim == 256;
  const int keys = p.cu_seqlens_k != nullptr ? p.total_k : p.seqlen_k;
  // A block-sparse mask needs key blocks that tile its 128-key blocks: the d256 tile (80) does not.
  const bool mask_ok = p.block_col_idx == nullptr || p.head_dim != 256;
  return sm == 90 && !forced_off && dim_ok && mask_ok && keys > 0 && (p.dtype == DType::F16 || p.dtype == DType::BF16);
}

}  // namespace hopper

}  // namespace attn::cuda
