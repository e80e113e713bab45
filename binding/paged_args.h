// Arguments that the ops over a paged cache read alike, whether the pool holds K/V pages
// (paged_ops.cc) or latent rows (mla_ops.cc): the layer, the block table, the table entries an
// append stores, an attention call's sequences and the query / output fields of its params.
#pragma once
#include <napi.h>

#include <cstdint>
#include <vector>

#include "runtime/device.h"
#include "runtime/storage.h"
#include "tensor_ref.h"

#ifdef ATTN_WITH_CUDA
#include <cuda_runtime.h>
#endif

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

// Block-table entries an append stores before its tokens (options tableIdx / tablePages: the pages
// lib/page_table.ts planAppend just gave the sequences): flat element idx[i] of the table becomes
// page pages[i]. They ride in the append's own packed upload, so a decode step whose sequences all
// cross a page boundary queues one copy, not one per sequence.
struct TableEntries {
  std::vector<int32_t> idx, pages;

  // Reads the options and checks them against `table` (already through checkBlockTable) and a pool
  // of `poolPages` pages: one page per index, every index inside the table, every page in the pool.
  TableEntries(Napi::Object opt, const TensorRef& table, int64_t poolPages);
  bool empty() const { return idx.empty(); }
};

// The entries where the op's launch finds them: idx and pages point into the op's packed arrays
// (toDevicePacked), table at the block table. Trivially copyable, for the launch's lambdas.
struct TableEntriesAt {
  int32_t* table = nullptr;
  const int32_t* idx = nullptr;
  const int32_t* pages = nullptr;
  int count = 0;

  TableEntriesAt(const TableEntries& e, const TensorRef& table);
  // Each runs right before the append on its queue / stream, so the append reads the new entries.
  void storeOnCpu() const;
#ifdef ATTN_WITH_CUDA
  void storeOnCuda(cudaStream_t stream) const;
#endif
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
