// Arguments that the ops over a paged cache read alike, whether the pool holds K/V pages
// (paged_ops.cc) or latent rows (mla_ops.cc): the layer, the block table, an attention call's
// sequences and the query / output fields of its params.
#pragma once
#include <napi.h>

#include <cstdint>
#include <vector>

#include "runtime/device.h"
#include "runtime/storage.h"
#include "tensor_ref.h"

namespace binding {

int layerArg(Napi::Value v, int layers);

// The block table must be a contiguous 2-d int32 tensor on the pool's device, and every row a call
// names must lie in it.
void checkBlockTable(const TensorRef& table, const attn::Device& poolDevice, const std::vector<int32_t>& rows);

// An attention call's sequences: options rows (block-table row of each), seqLens (cached tokens,
// the queries' own included) and cuSeqlensQ (query row offsets; empty: one query per sequence).
struct SequenceBatch {
  std::vector<int32_t> rows, seqLens, cuQ;
  int maxQ = 1, maxK = 0;  // set by check()

  explicit SequenceBatch(Napi::Object opt);
  size_t size() const { return rows.size(); }
  // Against q's `qRows` rows and the keys a block-table row of `tableKeys` slots holds.
  void check(int64_t qRows, int64_t tableKeys);
};

// The batch's arrays on the op's device, in one storage (toDevicePacked: one upload per call, not
// three). The storage may go once the launch that reads it is enqueued.
struct SequenceBatchOnDevice {
  attn::StoragePtr storage;
  const int32_t* rows = nullptr;
  const int32_t* seqLens = nullptr;
  const int32_t* cuQ = nullptr;  // null without cuSeqlensQ

  SequenceBatchOnDevice(const attn::Device& dev, const SequenceBatch& b);
  const int32_t* rowsData() const { return rows; }
  const int32_t* seqLensData() const { return seqLens; }
  const int32_t* cuQData() const { return cuQ; }
};

// The query, output and lse fields that PagedAttnParams and MlaAttnParams name alike.
template <typename Params>
void setQueryFields(Params& p, const TensorRef& q, const TensorRef& o, const TensorRef* lse) {
  p.dtype = q.dtype;
  p.q = q.data();
  p.o = o.data();
  p.lse = lse ? reinterpret_cast<float*>(lse->data()) : nullptr;
  p.q_row_stride = q.stride(0);
  p.q_head_stride = q.stride(1);
  p.o_row_stride = o.stride(0);
  p.o_head_stride = o.stride(1);
}

}  // namespace binding
