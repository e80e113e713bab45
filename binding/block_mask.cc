#include "block_mask.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "params_reader.h"
#include "tensor_ref.h"

namespace binding {
namespace {

// batch / heads_q: the call's sequences and query heads; rows_q: its longest sequence's query rows.
std::vector<attn::StoragePtr> readInto(Napi::Object opt, const attn::Device& dev, attn::BlockSparseMask& p, int batch,
                                       int heads_q, int rows_q) {
  Napi::Value v = opt.Get("blockMask");
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsObject()) attn::throwType("options.blockMask must be an object");
  Napi::Object m = v.As<Napi::Object>();
  TensorRef rowPtr = tensorRef(m.Get("rowPtr"), "options.blockMask.rowPtr");
  TensorRef colIdx = tensorRef(m.Get("colIdx"), "options.blockMask.colIdx");
  const int mbatch = intOpt(m, "batch", 0), heads = intOpt(m, "heads", 0);
  const int qBlocks = intOpt(m, "numQBlocks", 0), kBlocks = intOpt(m, "numKBlocks", 0), nnz = intOpt(m, "nnz", -1);
  for (const TensorRef* t : {&rowPtr, &colIdx}) {
    if (t->dtype != attn::DType::INT32 || t->shape.size() != 1 || !t->contiguous() || !(t->device() == dev))
      attn::throwRange("options.blockMask tensors must be contiguous 1-d int32 on the attention's device");
  }
  if (mbatch != 1 && mbatch != batch) attn::throwRange("options.blockMask batch must be 1 or the call's batch");
  if (heads != 1 && heads != heads_q) attn::throwRange("options.blockMask heads must be 1 or q's heads");
  // Every query row's block must have a row in the mask.
  if (qBlocks < 1 || static_cast<int64_t>(qBlocks) * attn::kSparseBlock < rows_q || kBlocks < 1)
    attn::throwRange("options.blockMask has too few query blocks for q");
  if (rowPtr.shape[0] != static_cast<int64_t>(mbatch) * heads * (qBlocks + 1))
    attn::throwRange("options.blockMask.rowPtr must have batch * heads * (numQBlocks + 1) entries");
  if (nnz < 0 || colIdx.shape[0] < std::max(nnz, 1)) attn::throwRange("options.blockMask.colIdx is shorter than nnz");
  p.block_row_ptr = reinterpret_cast<const int32_t*>(rowPtr.data());
  p.block_col_idx = reinterpret_cast<const int32_t*>(colIdx.data());
  p.block_mask_batch = mbatch;
  p.block_mask_heads = heads;
  p.block_mask_q_blocks = qBlocks;
  p.block_mask_k_blocks = kBlocks;
  p.block_mask_nnz = nnz;
  return {rowPtr.storage, colIdx.storage};
}

}  // namespace

std::vector<attn::StoragePtr> readBlockMask(Napi::Object opt, const attn::Device& dev, attn::AttnParams& p) {
  return readInto(opt, dev, p, p.batch, p.heads_q, p.seqlen_q);
}

std::vector<attn::StoragePtr> readBlockMask(Napi::Object opt, const attn::Device& dev, attn::PagedAttnParams& p) {
  return readInto(opt, dev, p, p.batch, p.heads_q, p.cu_seqlens_q != nullptr ? p.max_seqlen_q : 1);
}

}  // namespace binding
