// Paged KV cache ops: pagedAppend, pagedAttention, copyPages. The pool tensor is the whole cache,
// [layers, 2 (k, v), numPages, kvHeads, pageSize, headDim], contiguous; lib/paged_kv_cache.ts owns
// the page bookkeeping and guarantees that every block-table entry a call touches is a live page.
#include <memory>
#include <optional>

#include "bench_hook.h"
#include "block_mask.h"
#include "common/error.h"
#include "common/paged_params.h"
#include "cpu/page_topk.h"
#include "cpu/paged_attention.h"
#include "device_exec.h"
#include "errors.h"
#include "host_arrays.h"
#include "page_copy.h"
#include "page_topk.h"
#include "paged_args.h"
#include "params_reader.h"
#include "register.h"
#include "split_workspace.h"
#include "tensor_ref.h"

#ifdef ATTN_WITH_CUDA
#include "cuda/paged/page_topk.h"
#include "cuda/paged/paged_attention.h"
#include "cuda/timing/event_timer.h"
#endif

namespace binding {
namespace {

struct PoolGeometry {
  int layers, pages, heads, pageSize, dim;
  int64_t pageStride, headStride, planeStride;
};

PoolGeometry poolGeometry(const TensorRef& pool) {
  if (pool.shape.size() != 6 || pool.shape[1] != 2 || !pool.contiguous())
    attn::throwRange("pool must be a contiguous [layers, 2, pages, kvHeads, pageSize, headDim] tensor");
  PoolGeometry g;
  g.layers = static_cast<int>(pool.shape[0]);
  g.pages = static_cast<int>(pool.shape[2]);
  g.heads = static_cast<int>(pool.shape[3]);
  g.pageSize = static_cast<int>(pool.shape[4]);
  g.dim = static_cast<int>(pool.shape[5]);
  g.headStride = static_cast<int64_t>(g.pageSize) * g.dim;
  g.pageStride = g.headStride * g.heads;
  g.planeStride = g.pageStride * g.pages;
  return g;
}

// The page-pool and block-table fields PagedAppendParams and PagedAttnParams share.
template <typename Params>
void setPoolFields(Params& p, const TensorRef& pool, const PoolGeometry& g, int layer, const TensorRef& table) {
  char* base = pool.data();
  const size_t es = attn::dtypeSize(pool.dtype);
  p.k_pages = base + static_cast<size_t>(2 * layer) * g.planeStride * es;
  p.v_pages = base + static_cast<size_t>(2 * layer + 1) * g.planeStride * es;
  p.page_stride = g.pageStride;
  p.page_head_stride = g.headStride;
  p.block_table = reinterpret_cast<const int32_t*>(table.data());
  p.block_table_stride = static_cast<int>(table.shape[1]);
}

bool isQuantDType(attn::DType t) { return t == attn::DType::FP8E4M3 || t == attn::DType::INT8; }

// A quantized pool's scale pool [layers, 2, pages, kvHeads, pageSize, 1] and channel vectors
// [layers, 3 (K mean, K channel scale, V channel scale), kvHeads, headDim], both f32 on the pool's
// device (lib/paged_kv_cache.ts owns them).
template <typename Params>
void setQuantFields(Params& p, const TensorRef& pool, const PoolGeometry& g, int layer, const TensorRef& scales,
                    const TensorRef& smooth) {
  const std::vector<int64_t> sshape{g.layers, 2, g.pages, g.heads, g.pageSize, 1};
  if (scales.shape != sshape || !scales.contiguous() || scales.dtype != attn::DType::F32 || !(scales.device() == pool.device()))
    attn::throwRange("scales must be a contiguous f32 [layers, 2, pages, kvHeads, pageSize, 1] tensor on the pool's device");
  const std::vector<int64_t> mshape{g.layers, 3, g.heads, g.dim};
  if (smooth.shape != mshape || !smooth.contiguous() || smooth.dtype != attn::DType::F32 || !(smooth.device() == pool.device()))
    attn::throwRange("kSmooth must be a contiguous f32 [layers, 3, kvHeads, headDim] tensor on the pool's device");
  const int64_t plane = static_cast<int64_t>(g.pages) * g.heads * g.pageSize;
  float* base = reinterpret_cast<float*>(scales.data());
  p.cache_dtype = pool.dtype;
  p.k_scales = base + 2 * layer * plane;
  p.v_scales = base + (2 * layer + 1) * plane;
  p.scale_page_stride = static_cast<int64_t>(g.heads) * g.pageSize;
  p.scale_head_stride = g.pageSize;
  const int64_t vec = static_cast<int64_t>(g.heads) * g.dim;
  float* chans = reinterpret_cast<float*>(smooth.data()) + 3 * layer * vec;
  p.k_smooth = chans;
  p.k_chan = chans + vec;
  p.v_chan = chans + 2 * vec;
}

Napi::Value pagedAppend(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef pool = tensorRef(info[0], "pool");
    PoolGeometry g = poolGeometry(pool);
    int layer = layerArg(info[1], g.layers);
    TensorRef k = tensorRef(info[2], "k"), v = tensorRef(info[3], "v"), table = tensorRef(info[4], "blockTable");
    if (!info[5].IsObject()) attn::throwType("options must be an object");
    Napi::Object opt = info[5].As<Napi::Object>();
    std::vector<int32_t> rows = int32ArrayOpt(opt, "rows"), cuNew = int32ArrayOpt(opt, "cuNew"), startPos = int32ArrayOpt(opt, "startPos");
    checkBlockTable(table, pool.device(), rows);
    const TableEntries entries(opt, table, g.pages);
    const bool quant = isQuantDType(pool.dtype);
    TensorRef scales, smooth;
    if (quant && !(optionalTensorRef(info[6], "scales", &scales) && optionalTensorRef(info[7], "kSmooth", &smooth)))
      attn::throwRange("a quantized pool needs its scales and kSmooth tensors");
    for (const TensorRef* t : {&k, &v}) {
      if (t->shape.size() != 3 || t->shape[1] != g.heads || t->shape[2] != g.dim || t->strides[2] != 1)
        attn::throwRange("k and v must be [tokens, kvHeads, headDim] matching the cache");
      if ((quant ? isQuantDType(t->dtype) : t->dtype != pool.dtype) || !(t->device() == pool.device()))
        attn::throwRange("k and v must match the cache's dtype and device");
    }
    if (k.shape != v.shape) attn::throwRange("k and v must have one shape");
    if (rows.empty() || cuNew.size() != rows.size() + 1 || startPos.size() != rows.size() || cuNew.back() != k.shape[0])
      attn::throwRange("rows, cuNew and startPos disagree with each other or with k");

    attn::PagedAppendParams p;
    p.dtype = k.dtype;  // the pool's, or its compute dtype when the pool is quantized
    p.cache_dtype = pool.dtype;
    if (k.dtype != v.dtype) attn::throwRange("k and v must have one dtype");
    if (quant) {
      setQuantFields(p, pool, g, layer, scales, smooth);
      p.init_smoothing = boolOpt(opt, "initSmoothing", false);
    }
    p.k = k.data();
    p.v = v.data();
    p.k_row_stride = k.stride(0);
    p.k_head_stride = k.stride(1);
    p.v_row_stride = v.stride(0);
    p.v_head_stride = v.stride(1);
    setPoolFields(p, pool, g, layer, table);
    p.batch = static_cast<int>(rows.size());
    p.total_new = static_cast<int>(k.shape[0]);
    p.heads_kv = g.heads;
    p.head_dim = g.dim;
    p.page_size = g.pageSize;
    // Table entries without tokens still go in (the backends' appends do nothing for zero tokens):
    // lib/ has already put their pages in its page lists.
    if (p.total_new == 0 && entries.empty()) return info.Env().Undefined();

    const attn::Device& dev = pool.device();
    TableEntriesAt at(entries, table);
    attn::StoragePtr arraysS = toDevicePacked<int32_t>(dev, {&rows, &cuNew, &startPos, &entries.idx, &entries.pages},
                                                       {&p.block_table_rows, &p.cu_new, &p.start_pos, &at.idx, &at.pages});
    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(std::vector<attn::StoragePtr>{
        pool.storage, k.storage, v.storage, table.storage, arraysS, quant ? scales.storage : nullptr,
        quant ? smooth.storage : nullptr});
    launch(dev, [p, at, holds] {
      at.storeOnCpu();
      attn::cpu::pagedAppend(p);
    }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      at.storeOnCuda(c.stream);
      attn::cuda::pagedAppend(p, c.stream);
#endif
    });
    return info.Env().Undefined();
  });
}

Napi::Value pagedAttention(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef q = tensorRef(info[0], "q");
    TensorRef pool = tensorRef(info[1], "pool");
    PoolGeometry g = poolGeometry(pool);
    int layer = layerArg(info[2], g.layers);
    TensorRef table = tensorRef(info[3], "blockTable"), o = tensorRef(info[4], "out");
    TensorRef lse;
    bool hasLse = optionalTensorRef(info[5], "lse", &lse);
    if (!info[6].IsObject()) attn::throwType("options must be an object");
    Napi::Object opt = info[6].As<Napi::Object>();
    SequenceBatch batch(opt);
    checkBlockTable(table, pool.device(), batch.rows);
    if (q.shape.size() != 3 || q.shape[2] != g.dim || q.strides[2] != 1) attn::throwRange("q must be [tokens, heads, headDim] matching the cache");
    const bool quant = isQuantDType(pool.dtype);
    TensorRef scales, smooth;
    if (quant && !(optionalTensorRef(info[7], "scales", &scales) && optionalTensorRef(info[8], "kSmooth", &smooth)))
      attn::throwRange("a quantized pool needs its scales and kSmooth tensors");
    if ((quant ? isQuantDType(q.dtype) : q.dtype != pool.dtype) || !(q.device() == pool.device()))
      attn::throwRange("q must match the cache's dtype and device");
    if (o.shape != q.shape || o.dtype != q.dtype || !(o.device() == q.device()) || o.strides[2] != 1) attn::throwRange("out must match q");
    int heads = static_cast<int>(q.shape[1]);
    if (heads % g.heads != 0) attn::throwRange("q heads must be a multiple of the cache's kv heads");
    batch.check(q.shape[0], table.shape[1] * g.pageSize);
    if (hasLse && (lse.shape != std::vector<int64_t>{q.shape[0], heads} || lse.dtype != attn::DType::F32 || !lse.contiguous()))
      attn::throwRange("lse must be a contiguous f32 [tokens, heads] tensor");

    attn::PagedAttnParams p;
    setQueryFields(p, q, o, hasLse ? &lse : nullptr);
    setPoolFields(p, pool, g, layer, table);
    if (quant) setQuantFields(p, pool, g, layer, scales, smooth);
    p.batch = static_cast<int>(batch.size());
    p.total_q = static_cast<int>(q.shape[0]);
    p.max_seqlen_q = batch.maxQ;
    p.max_seqlen_k = batch.maxK;
    p.heads_q = heads;
    p.heads_kv = g.heads;
    p.head_dim = g.dim;
    p.page_size = g.pageSize;
    p.scale = static_cast<float>(numberOpt(opt, "scale", 1.0));
    p.softcap = static_cast<float>(numberOpt(opt, "softcap", 0.0));
    p.causal = boolOpt(opt, "causal", true);
    p.window_left = intOpt(opt, "windowLeft", -1);
    p.window_right = intOpt(opt, "windowRight", -1);
    if (p.causal) p.window_right = 0;
    std::vector<float> slopes = float32ArrayOpt(opt, "alibiSlopes");
    if (!slopes.empty() && static_cast<int>(slopes.size()) != heads) attn::throwRange("options.alibiSlopes must have one slope per q head");
    int requestedSplits = intOpt(opt, "numSplits", 0);
    (void)requestedSplits;  // used by the CUDA path only
    // Benchmark / test hook (scripts/): which CUDA kernel runs the call, 0 the usual choice
    // (attn::cuda::pagedKernelFor), 1 the decode kernel, 2 the prefill kernel. Never used by lib/.
    const int forceKernel = intOpt(opt, "pagedKernel", 0);
    if (forceKernel < 0 || forceKernel > 2) attn::throwRange("options.pagedKernel must be 0, 1 or 2");
    (void)forceKernel;
    BenchHook bench(opt);
    // With benchIters and topKPages: also time the top-k selection alone and the decode alone over
    // the compacted table, returning [all, select, decode] ms per launch (scripts/bench-gpu.js).
    const bool benchStages = boolOpt(opt, "benchStages", false);
    // With benchIters: benchRotateRows holds R groups of batch-size block-table rows (sequences of
    // the same lengths), and launch i decodes group i % R, so the timed launches stream R times the
    // K/V bytes: a working set larger than L2 gives the cold-cache time a model's decode step sees.
    const std::vector<int32_t> rotateRows = int32ArrayOpt(opt, "benchRotateRows");
    double benchSelectMs = -1.0, benchDecodeMs = -1.0;
    (void)benchStages;  // used by the CUDA path only
    if (p.total_q == 0) return info.Env().Undefined();
    if (!q.device().isCuda() && q.dtype != attn::DType::F32 && q.dtype != attn::DType::F16 && q.dtype != attn::DType::BF16)
      attn::throwType(std::string("pagedAttention on cpu supports f32, f16 and bf16, not ") + attn::dtypeName(q.dtype));

    const attn::Device& dev = q.device();
    // A small CUDA decode batch passes its rows and lengths in the kernel's arguments: no upload
    // (a copy, and a copy node that breaks the programmatic launch after the previous kernel).
    const Napi::Value maskOpt = opt.Get("blockMask");
    const bool inlineBatch = dev.isCuda() && batch.cuQ.empty() && batch.size() <= static_cast<size_t>(attn::kPagedInlineBatch) &&
                             forceKernel != 2 && (maskOpt.IsUndefined() || maskOpt.IsNull()) && intOpt(opt, "topKPages", 0) == 0;
    std::optional<SequenceBatchOnDevice> onDev;
    if (!rotateRows.empty()) {
      if (!inlineBatch || rotateRows.size() % batch.size() != 0)
        attn::throwRange("options.benchRotateRows (a benchmark hook) needs a CUDA decode of a small batch and whole groups of its size");
      for (const int32_t r : rotateRows)
        if (r < 0 || r >= table.shape[0]) attn::throwRange("options.benchRotateRows holds a row outside the block table");
    }
    if (inlineBatch) {
      p.host_block_table_rows = batch.rows.data();
      p.host_seq_lens = batch.seqLens.data();
    } else {
      onDev.emplace(dev, batch);
      p.block_table_rows = onDev->rowsData();
      p.seq_lens = onDev->seqLensData();
      p.cu_seqlens_q = onDev->cuQData();
    }
    attn::StoragePtr slopeS;
    if (!slopes.empty()) {
      slopeS = toDevice(dev, slopes);
      p.alibi_slopes = static_cast<const float*>(slopeS->data());
    }
    // Block-sparse mask over each sequence's (query rows x cached keys), lib/paged_attention.ts.
    std::vector<attn::StoragePtr> maskS = readBlockMask(opt, dev, p);
    const bool masked = !maskS.empty();
    if (masked && quant) attn::throwRange("options.blockMask needs a 16/32-bit cache, not a quantized one");
    if (masked && intOpt(opt, "topKPages", 0) != 0) attn::throwRange("options.blockMask cannot be combined with options.topKPages");
    // Top-k sparse decode (options.topKPages): p now reads a compacted table the selection writes.
    TopKPlan topk = planTopK(opt, q, pool, layer, batch.seqLens, !batch.cuQ.empty(), p);
    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(std::vector<attn::StoragePtr>{
        q.storage, pool.storage, table.storage, o.storage, hasLse ? lse.storage : nullptr, onDev ? onDev->storage : nullptr, slopeS,
        quant ? scales.storage : nullptr, quant ? smooth.storage : nullptr});
    holds->insert(holds->end(), topk.holds.begin(), topk.holds.end());
    holds->insert(holds->end(), maskS.begin(), maskS.end());
    const bool sparse = topk.active;
    const attn::PageTopKParams select = topk.select;
    launch(dev, [p, holds, sparse, select] {
      if (sparse) attn::cpu::pageTopK(select);
      attn::cpu::pagedAttention(p);
    }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      std::string why;
      using attn::cuda::PagedKernel;
      const PagedKernel kernel = forceKernel == 1   ? PagedKernel::Decode
                                 : forceKernel == 2 ? PagedKernel::Prefill
                                                    : attn::cuda::pagedKernelFor(p, c.multiprocessors);
      attn::PagedAttnParams pc = p;
      attn::StoragePtr ws;
      if (kernel == PagedKernel::Prefill) {
        if (!attn::cuda::pagedPrefillSupported(pc, &why)) attn::throwRange("pagedAttention on " + dev.str() + ": " + why);
      } else {
        if (!attn::cuda::pagedAttentionSupported(pc, &why)) attn::throwRange("pagedAttention on " + dev.str() + ": " + why);
        pc.num_splits = requestedSplits > 0 ? requestedSplits : attn::cuda::pagedChooseSplits(pc, c.multiprocessors);
        ws = attachSplitWorkspace(dev, pc, attn::cuda::pagedWorkspaceFloats(pc));
        if (ws) pc.split_counters = splitCounters(dev, static_cast<size_t>(attn::cuda::pagedCounterSlots(pc)));
      }
      attn::PageTopKParams sel = select;
      if (sparse) sel.counters = splitCounters(dev, static_cast<size_t>(sel.batch));
      auto selectPages = [&] { attn::cuda::pageTopK(sel, c.multiprocessors, c.stream); };
      size_t rotation = 0;
      auto decode = [&] {
        if (!rotateRows.empty()) {
          pc.host_block_table_rows = rotateRows.data() + (rotation++ * batch.size()) % rotateRows.size();
        }
        if (kernel == PagedKernel::Prefill) {
          attn::cuda::pagedPrefill(pc, c.multiprocessors, c.stream);
        } else {
          attn::cuda::pagedAttention(pc, c.multiprocessors, c.stream);
        }
      };
      auto run = [&] {
        if (sparse) selectPages();
        decode();
      };
      bench.run(c, run);
      if (bench.iters() > 0 && benchStages && sparse) {
        benchSelectMs = attn::cuda::timeLaunches(c.stream, bench.iters(), selectPages);
        benchDecodeMs = attn::cuda::timeLaunches(c.stream, bench.iters(), decode);
      }
#endif
    });
    if (bench.ms() >= 0 && benchSelectMs >= 0) {
      Napi::Array r = Napi::Array::New(info.Env(), 3);
      r.Set(0u, Napi::Number::New(info.Env(), bench.ms()));
      r.Set(1u, Napi::Number::New(info.Env(), benchSelectMs));
      r.Set(2u, Napi::Number::New(info.Env(), benchDecodeMs));
      return r;
    }
    return bench.result(info.Env());
  });
}

Napi::Value copyPages(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef pool = tensorRef(info[0], "pool");
    PoolGeometry g = poolGeometry(pool);
    const PagePairs pairs = pagePairsOpt(info[1], g.pages);
    const int64_t es = static_cast<int64_t>(attn::dtypeSize(pool.dtype));
    // Each layer's K and each layer's V is a plane.
    launchPageCopies(pool.device(), pairs, {PageArray{&pool, g.pageStride * es, 2LL * g.layers, g.planeStride * es}});
    return info.Env().Undefined();
  });
}

}  // namespace

void registerPagedOps(Napi::Env env, Napi::Object exports) {
  exports.Set("pagedAppend", Napi::Function::New(env, pagedAppend, "pagedAppend"));
  exports.Set("pagedAttention", Napi::Function::New(env, pagedAttention, "pagedAttention"));
  exports.Set("copyPages", Napi::Function::New(env, copyPages, "copyPages"));
}

}  // namespace binding
