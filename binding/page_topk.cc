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

// The summaries tensor: [layers, 2 (min, max), pages, kvHeads, 1, R], contiguous, shaped like the
// pool with one slot per page (so copyPages copies a page's summaries like its K/V); R = headDim
// (every channel) or R label channels, listed by `channels`.
const TensorRef& checkSummaries(const TensorRef& s, const TensorRef& pool) {
  if (s.shape.size() != 6 || pool.shape.size() != 6 || s.shape[0] != pool.shape[0] || s.shape[1] != 2 ||
      s.shape[2] != pool.shape[2] || s.shape[3] != pool.shape[3] || s.shape[4] != 1 || s.shape[5] < 1 ||
      s.shape[5] > pool.shape[5] || !s.contiguous() || s.dtype != pool.dtype || !(s.device() == pool.device()))
    attn::throwRange("summaries must be a contiguous [layers, 2, pages, kvHeads, 1, channels] tensor like the pool");
  return s;
}

// The label channels of summaries with R < headDim: a contiguous int32 [layers, kvHeads, R] tensor
// on the pool's device (null / undefined: every channel, R must be headDim). Returns the layer's rows.
const int32_t* summaryChannels(Napi::Value v, const TensorRef& sums, const TensorRef& pool, int layer, TensorRef& holder) {
  const int64_t R = sums.shape[5];
  if (v.IsUndefined() || v.IsNull()) {
    if (R != pool.shape[5]) attn::throwRange("summaries over fewer channels than headDim need their channel indices");
    return nullptr;
  }
  holder = tensorRef(v, "summaryChannels");
  if (holder.shape.size() != 3 || holder.shape[0] != pool.shape[0] || holder.shape[1] != pool.shape[3] || holder.shape[2] != R ||
      !holder.contiguous() || holder.dtype != attn::DType::INT32 || !(holder.device() == pool.device()))
    attn::throwRange("summaryChannels must be a contiguous int32 [layers, kvHeads, channels] tensor on the pool's device");
  return reinterpret_cast<const int32_t*>(holder.data()) + static_cast<int64_t>(layer) * pool.shape[3] * R;
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
    TensorRef chans;
    const int32_t* channels = summaryChannels(info[5], sums, pool, layer, chans);
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
    p.sum_dim = static_cast<int>(sums.shape[5]);
    p.sum_page_stride = heads * p.sum_dim;
    p.channels = channels;
    p.block_table = reinterpret_cast<const int32_t*>(table.data());
    p.block_table_stride = static_cast<int>(table.shape[1]);
    p.count = static_cast<int>(n);
    p.heads_kv = static_cast<int>(heads);
    p.head_dim = static_cast<int>(dim);
    p.page_size = static_cast<int>(pageSize);
    const attn::Device& dev = pool.device();
    attn::StoragePtr arraysS = toDevicePacked<int32_t>(dev, {&rows, &logical, &slotBegin, &slotEnd}, {&p.rows, &p.logical, &p.slot_begin, &p.slot_end});
    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(
        std::vector<attn::StoragePtr>{pool.storage, sums.storage, table.storage, arraysS, chans.storage});
    launch(dev, [p, holds] { attn::cpu::pageSummarize(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      attn::cuda::pageSummarize(p, c.stream);
#endif
    });
    return info.Env().Undefined();
  });
}

// pagedChooseChannels(k, channels, layer): the layer's label channels from the tokens k
// ([tokens, kvHeads, headDim], channels contiguous) of its first append (PageChannelParams).
Napi::Value pagedChooseChannels(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef k = tensorRef(info[0], "k"), chans = tensorRef(info[1], "channels");
    if (k.shape.size() != 3 || k.stride(2) != 1) attn::throwRange("k must be [tokens, kvHeads, headDim] with contiguous channels");
    if (chans.shape.size() != 3 || chans.shape[1] != k.shape[1] || chans.shape[2] < 1 || chans.shape[2] > k.shape[2] ||
        !chans.contiguous() || chans.dtype != attn::DType::INT32 || !(chans.device() == k.device()))
      attn::throwRange("channels must be a contiguous int32 [layers, kvHeads, count] tensor on k's device");
    if (!info[2].IsNumber()) attn::throwType("layer must be a number");
    const int layer = info[2].As<Napi::Number>().Int32Value();
    if (layer < 0 || layer >= chans.shape[0]) attn::throwRange("layer is out of range");
    if (k.shape[0] == 0) return info.Env().Undefined();
    if (k.shape[0] > 0x7fffffff) attn::throwRange("k has too many tokens");
    attn::PageChannelParams p;
    p.dtype = k.dtype;
    p.k = k.data();
    p.k_row_stride = k.stride(0);
    p.k_head_stride = k.stride(1);
    p.tokens = static_cast<int>(k.shape[0]);
    p.heads_kv = static_cast<int>(k.shape[1]);
    p.head_dim = static_cast<int>(k.shape[2]);
    p.count = static_cast<int>(chans.shape[2]);
    p.out = reinterpret_cast<int32_t*>(chans.data()) + static_cast<int64_t>(layer) * p.heads_kv * p.count;
    const attn::Device& dev = k.device();
    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(std::vector<attn::StoragePtr>{k.storage, chans.storage});
    if (dev.isCuda()) {
      const size_t chunks = (static_cast<size_t>(p.tokens) + attn::kChannelChunk - 1) / attn::kChannelChunk;
      attn::StoragePtr part = allocate(dev, chunks * p.heads_kv * p.head_dim * sizeof(double));
      p.partial = static_cast<double*>(part->data());
      holds->push_back(part);
    }
    launch(dev, [p, holds] { attn::cpu::pageChooseChannels(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      attn::cuda::pageChooseChannels(p, c.stream);
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
  TensorRef chans;
  const int32_t* channels = summaryChannels(opt.Get("summaryChannels"), sums, pool, layer, chans);

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
  s.sum_dim = static_cast<int>(sums.shape[5]);
  s.sum_page_stride = pool.shape[3] * sums.shape[5];
  s.channels = channels;
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
  if (dev.isCuda()) {  // s.counters: the device's split counters, set where the launch is
    attn::StoragePtr keys = allocate(dev, static_cast<size_t>(p.batch) * maxPages * sizeof(uint32_t));
    s.keys = static_cast<uint32_t*>(keys->data());
    plan.holds.push_back(keys);
  }
  plan.holds.insert(plan.holds.end(), {sums.storage, table, lens, chans.storage});

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
  exports.Set("pagedChooseChannels", Napi::Function::New(env, pagedChooseChannels, "pagedChooseChannels"));
}

}  // namespace binding
