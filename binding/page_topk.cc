#include "page_topk.h"

#include <algorithm>
#include <memory>
#include <string>

#include "common/error.h"
#include "cpu/page_topk.h"
#include "device_exec.h"
#include "errors.h"
#include "host_arrays.h"
#include "params_reader.h"
#include "register.h"

#ifdef ATTN_WITH_CUDA
#include "cuda/paged/page_topk.h"
#endif

namespace binding {
namespace {

// The summaries tensor: [layers, 2 (min, max), pages, kvHeads, 1, headDim], contiguous, shaped like
// the pool with one slot per page (so copyPages copies a page's summaries like its K/V).
const TensorRef& checkSummaries(const TensorRef& s, const TensorRef& pool) {
  if (s.shape.size() != 6 || pool.shape.size() != 6 || s.shape[0] != pool.shape[0] || s.shape[1] != 2 ||
      s.shape[2] != pool.shape[2] || s.shape[3] != pool.shape[3] || s.shape[4] != 1 || s.shape[5] != pool.shape[5] ||
      !s.contiguous() || s.dtype != pool.dtype || !(s.device() == pool.device()))
    attn::throwRange("summaries must be a contiguous [layers, 2, pages, kvHeads, 1, headDim] tensor like the pool");
  return s;
}

// Element offset of plane `plane` (0 = min, 1 = max) of `layer` in the summaries.
int64_t planeOffset(const TensorRef& s, int layer, int plane) {
  return (2LL * layer + plane) * s.shape[2] * s.shape[3] * s.shape[5];
}

Napi::Value pagedSummarize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef pool = tensorRef(info[0], "pool"), sums = tensorRef(info[1], "summaries");
    checkSummaries(sums, pool);
    if (!pool.contiguous() || pool.shape[1] != 2) attn::throwRange("pool must be a contiguous [layers, 2, pages, kvHeads, pageSize, headDim] tensor");
    if (!info[2].IsNumber()) attn::throwType("layer must be a number");
    const int layer = info[2].As<Napi::Number>().Int32Value();
    if (layer < 0 || layer >= pool.shape[0]) attn::throwRange("layer is out of range");
    TensorRef table = tensorRef(info[3], "blockTable");
    if (table.shape.size() != 2 || !table.contiguous() || table.dtype != attn::DType::INT32 || !(table.device() == pool.device()))
      attn::throwRange("blockTable must be a contiguous 2-d int32 tensor on the pool's device");
    if (!info[4].IsObject()) attn::throwType("options must be an object");
    Napi::Object opt = info[4].As<Napi::Object>();
    std::vector<int32_t> rows = int32ArrayOpt(opt, "rows"), logical = int32ArrayOpt(opt, "logical"),
                         slotBegin = int32ArrayOpt(opt, "slotBegin"), slotEnd = int32ArrayOpt(opt, "slotEnd");
    const size_t n = rows.size();
    if (logical.size() != n || slotBegin.size() != n || slotEnd.size() != n) attn::throwRange("rows, logical, slotBegin and slotEnd must have one length");
    for (size_t i = 0; i < n; ++i)
      if (rows[i] < 0 || rows[i] >= table.shape[0] || logical[i] < 0 || logical[i] >= table.shape[1])
        attn::throwRange("page item " + std::to_string(i) + " is outside the block table");
    if (n == 0) return info.Env().Undefined();

    const size_t es = attn::dtypeSize(pool.dtype);
    const int64_t pages = pool.shape[2], heads = pool.shape[3], pageSize = pool.shape[4], dim = pool.shape[5];
    attn::PageSummaryParams p;
    p.dtype = pool.dtype;
    p.page_head_stride = pageSize * dim;
    p.page_stride = heads * p.page_head_stride;
    p.k_pages = pool.data() + static_cast<size_t>(2 * layer) * pages * p.page_stride * es;
    p.sum_min = sums.data() + static_cast<size_t>(planeOffset(sums, layer, 0)) * es;
    p.sum_max = sums.data() + static_cast<size_t>(planeOffset(sums, layer, 1)) * es;
    p.sum_page_stride = heads * dim;
    p.block_table = reinterpret_cast<const int32_t*>(table.data());
    p.block_table_stride = static_cast<int>(table.shape[1]);
    p.count = static_cast<int>(n);
    p.heads_kv = static_cast<int>(heads);
    p.head_dim = static_cast<int>(dim);
    p.page_size = static_cast<int>(pageSize);
    const attn::Device& dev = pool.device();
    attn::StoragePtr rowsS = toDevice(dev, rows), logS = toDevice(dev, logical), s0S = toDevice(dev, slotBegin), s1S = toDevice(dev, slotEnd);
    p.rows = static_cast<const int32_t*>(rowsS->data());
    p.logical = static_cast<const int32_t*>(logS->data());
    p.slot_begin = static_cast<const int32_t*>(s0S->data());
    p.slot_end = static_cast<const int32_t*>(s1S->data());
    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(
        std::vector<attn::StoragePtr>{pool.storage, sums.storage, table.storage, rowsS, logS, s0S, s1S});
    launch(dev, [p, holds] { attn::cpu::pageSummarize(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      attn::cuda::pageSummarize(p, c.stream);
#endif
    });
    return info.Env().Undefined();
  });
}

}  // namespace

TopKPlan planTopK(Napi::Object opt, const TensorRef& q, const TensorRef& pool, int layer, const std::vector<int32_t>& seqLens,
                  bool multiQuery, attn::PagedAttnParams& p) {
  TopKPlan plan;
  const int k = intOpt(opt, "topKPages", 0);
  if (k == 0) return plan;
  if (k < 2) attn::throwRange("options.topKPages must be at least 2 (the first and the last page are always kept)");
  if (multiQuery) attn::throwRange("options.topKPages works for decode (one query per sequence) only");
  if (p.alibi_slopes != nullptr || p.window_left >= 0 || (!p.causal && p.window_right >= 0))
    attn::throwRange("options.topKPages cannot be combined with ALiBi or a window (positions change under compaction)");
  Napi::Value sv = opt.Get("summaries");
  if (!sv.IsObject()) attn::throwType("options.summaries must be a Tensor with options.topKPages");
  TensorRef sums = tensorRef(sv, "options.summaries");
  checkSummaries(sums, pool);

  const int ps = p.page_size;
  int maxPages = 1;
  for (int32_t len : seqLens) maxPages = std::max(maxPages, static_cast<int>((std::max(len, 0) + ps - 1) / ps));
  const int kEff = std::min(k, maxPages);
  std::vector<int32_t> clen(seqLens.size());
  int maxLen = 0;
  for (size_t b = 0; b < seqLens.size(); ++b) {
    clen[b] = static_cast<int32_t>(attn::compactedLength(std::max(seqLens[b], 0), ps, kEff));
    maxLen = std::max(maxLen, clen[b]);
  }

  const attn::Device& dev = q.device();
  const size_t es = attn::dtypeSize(pool.dtype);
  attn::PageTopKParams& s = plan.select;
  s.dtype = q.dtype;
  s.q = q.data();
  s.q_row_stride = q.stride(0);
  s.q_head_stride = q.stride(1);
  s.sum_min = sums.data() + static_cast<size_t>(planeOffset(sums, layer, 0)) * es;
  s.sum_max = sums.data() + static_cast<size_t>(planeOffset(sums, layer, 1)) * es;
  s.sum_page_stride = pool.shape[3] * pool.shape[5];
  s.block_table = p.block_table;
  s.block_table_stride = p.block_table_stride;
  s.block_table_rows = p.block_table_rows;
  s.seq_lens = p.seq_lens;
  s.batch = p.batch;
  s.heads_q = p.heads_q;
  s.heads_kv = p.heads_kv;
  s.head_dim = p.head_dim;
  s.page_size = ps;
  s.max_pages = maxPages;
  s.k = kEff;
  attn::StoragePtr table = allocate(dev, static_cast<size_t>(p.batch) * kEff * sizeof(int32_t));
  attn::StoragePtr lens = toDevice(dev, clen);
  s.out_table = static_cast<int32_t*>(table->data());
  if (dev.isCuda()) {
    attn::StoragePtr scores = allocate(dev, static_cast<size_t>(p.batch) * maxPages * sizeof(float));
    s.scores = static_cast<float*>(scores->data());
    plan.holds.push_back(scores);
  }
  plan.holds.insert(plan.holds.end(), {sums.storage, table, lens});

  p.block_table = s.out_table;
  p.block_table_stride = kEff;
  p.block_table_rows = nullptr;
  p.seq_lens = static_cast<const int32_t*>(lens->data());
  p.max_seqlen_k = maxLen;
  plan.active = true;
  return plan;
}

void registerPageTopKOps(Napi::Env env, Napi::Object exports) {
  exports.Set("pagedSummarize", Napi::Function::New(env, pagedSummarize, "pagedSummarize"));
}

}  // namespace binding
