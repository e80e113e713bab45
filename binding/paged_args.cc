#include "paged_args.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "host_arrays.h"
#include "params_reader.h"

#ifdef ATTN_WITH_CUDA
#include "cuda/paged/paged_attention.h"
#endif

namespace binding {

int layerArg(Napi::Value v, int layers) {
  if (!v.IsNumber()) attn::throwType("layer must be a number");
  int layer = v.As<Napi::Number>().Int32Value();
  if (layer < 0 || layer >= layers) attn::throwRange("layer " + std::to_string(layer) + " is out of range");
  return layer;
}

void checkBlockTable(const TensorRef& table, const attn::Device& poolDevice, const std::vector<int32_t>& rows) {
  if (table.shape.size() != 2 || !table.contiguous() || table.dtype != attn::DType::INT32 || !(table.device() == poolDevice))
    attn::throwRange("blockTable must be a contiguous 2-d int32 tensor on the pool's device");
  for (int32_t r : rows)
    if (r < 0 || r >= table.shape[0]) attn::throwRange("block table row " + std::to_string(r) + " is out of range");
}

TableEntries::TableEntries(Napi::Object opt, const TensorRef& table, int64_t poolPages)
    : idx(int32ArrayOpt(opt, "tableIdx")), pages(int32ArrayOpt(opt, "tablePages")) {
  if (idx.size() != pages.size())
    attn::throwRange("options.tableIdx (" + std::to_string(idx.size()) + " entries) and options.tablePages (" +
                     std::to_string(pages.size()) + ") must have one length");
  const int64_t size = table.numel();
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= size)
      attn::throwRange("options.tableIdx[" + std::to_string(i) + "] = " + std::to_string(idx[i]) + " is outside the block table [0, " +
                       std::to_string(size) + ")");
    if (pages[i] < 0 || pages[i] >= poolPages)
      attn::throwRange("options.tablePages[" + std::to_string(i) + "] = " + std::to_string(pages[i]) + " is not a page of the pool [0, " +
                       std::to_string(poolPages) + ")");
  }
}

TableEntriesAt::TableEntriesAt(const TableEntries& e, const TensorRef& table)
    : table(reinterpret_cast<int32_t*>(table.data())), count(static_cast<int>(e.idx.size())) {}

void TableEntriesAt::storeOnCpu() const {
  for (int i = 0; i < count; ++i) table[idx[i]] = pages[i];
}

#ifdef ATTN_WITH_CUDA
void TableEntriesAt::storeOnCuda(cudaStream_t stream) const { attn::cuda::writeTableEntries(table, idx, pages, count, stream); }
#endif

SequenceBatch::SequenceBatch(Napi::Object opt)
    : rows(int32ArrayOpt(opt, "rows")), seqLens(int32ArrayOpt(opt, "seqLens")), cuQ(int32ArrayOpt(opt, "cuSeqlensQ")) {}

void SequenceBatch::check(int64_t qRows, int64_t tableKeys) {
  const size_t batch = rows.size();
  if (batch == 0 || seqLens.size() != batch) attn::throwRange("rows and seqLens must have one entry per sequence");
  if (cuQ.empty() ? static_cast<int64_t>(batch) != qRows : (cuQ.size() != batch + 1 || cuQ[0] != 0 || cuQ.back() != qRows))
    attn::throwRange("q rows disagree with the batch (cuSeqlensQ)");
  maxQ = 1;
  maxK = 0;
  for (size_t b = 0; b < batch; ++b) {
    int nq = cuQ.empty() ? 1 : cuQ[b + 1] - cuQ[b];
    if (nq < 0 || nq > seqLens[b]) attn::throwRange("each sequence needs at least as many cached tokens as queries");
    if (static_cast<int64_t>(seqLens[b]) > tableKeys) attn::throwRange("seqLens exceeds the block table");
    maxQ = std::max(maxQ, nq);
    maxK = std::max(maxK, seqLens[b]);
  }
}

SequenceBatchOnDevice::SequenceBatchOnDevice(const attn::Device& dev, const SequenceBatch& b) {
  storage = toDevicePacked<int32_t>(dev, {&b.rows, &b.seqLens, &b.cuQ}, {&rows, &seqLens, &cuQ});
}

}  // namespace binding
