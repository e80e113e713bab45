// Multi-head latent attention ops: mlaAppend, mlaAttention, mlaCopyPages. The pool tensor is the
// whole latent cache, [layers, pages, pageSize, 576] contiguous (f32/f16/bf16/fp8e4m3), and an fp8
// pool comes with its scales, [layers, pages, pageSize, 2] f32. lib/paged_latent_cache.ts owns the
// page bookkeeping (lib/page_table.ts) and guarantees every block-table entry a call touches is live.
#include <memory>

#include "bench_hook.h"
#include "common/error.h"
#include "common/mla_params.h"
#include "cpu/mla_attention.h"
#include "device_exec.h"
#include "errors.h"
#include "host_arrays.h"
#include "page_copy.h"
#include "paged_args.h"
#include "params_reader.h"
#include "register.h"
#include "split_workspace.h"
#include "tensor_ref.h"

#ifdef ATTN_WITH_CUDA
#include "cuda/mla/mla.h"
#endif

namespace binding {
namespace {

struct LatentPool {
  TensorRef pool;
  TensorRef scales;  // fp8 only
  bool fp8 = false;
  int layers = 0, pages = 0, pageSize = 0;
};

LatentPool latentPool(Napi::Value poolV, Napi::Value scalesV) {
  LatentPool g;
  g.pool = tensorRef(poolV, "pool");
  const TensorRef& p = g.pool;
  if (p.shape.size() != 4 || p.shape[3] != attn::kMlaRow || !p.contiguous())
    attn::throwRange("pool must be a contiguous [layers, pages, pageSize, 576] tensor");
  if (p.dtype != attn::DType::F32 && p.dtype != attn::DType::F16 && p.dtype != attn::DType::BF16 && p.dtype != attn::DType::FP8E4M3)
    attn::throwRange("pool must be f32, f16, bf16 or fp8e4m3");
  g.layers = static_cast<int>(p.shape[0]);
  g.pages = static_cast<int>(p.shape[1]);
  g.pageSize = static_cast<int>(p.shape[2]);
  if (g.pageSize <= 0 || (g.pageSize & (g.pageSize - 1)) != 0) attn::throwRange("pool page size must be a power of two");
  g.fp8 = p.dtype == attn::DType::FP8E4M3;
  bool hasScales = optionalTensorRef(scalesV, "scales", &g.scales);
  if (hasScales != g.fp8) attn::throwRange("scales go with an fp8e4m3 pool, and only with one");
  if (g.fp8 && (g.scales.shape != std::vector<int64_t>{p.shape[0], p.shape[1], p.shape[2], 2} || !g.scales.contiguous() ||
                g.scales.dtype != attn::DType::F32 || !(g.scales.device() == p.device())))
    attn::throwRange("scales must be a contiguous f32 [layers, pages, pageSize, 2] tensor on the pool's device");
  return g;
}

attn::MlaCacheView cacheView(const LatentPool& g, int layer, const TensorRef& table, const std::vector<int32_t>& rows) {
  checkBlockTable(table, g.pool.device(), rows);
  attn::MlaCacheView c;
  c.dtype = g.pool.dtype;
  const int64_t layerRows = static_cast<int64_t>(g.pages) * g.pageSize;
  c.pages = g.pool.data() + static_cast<size_t>(layer * layerRows * attn::kMlaRow) * attn::dtypeSize(g.pool.dtype);
  c.scales = g.fp8 ? reinterpret_cast<float*>(g.scales.data()) + layer * layerRows * 2 : nullptr;
  c.num_pages = g.pages;
  c.page_size = g.pageSize;
  c.block_table = reinterpret_cast<const int32_t*>(table.data());
  c.block_table_stride = static_cast<int>(table.shape[1]);
  return c;
}

Napi::Value mlaAppend(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    LatentPool g = latentPool(info[0], info[1]);
    int layer = layerArg(info[2], g.layers);
    TensorRef latent = tensorRef(info[3], "latent");
    TensorRef rope;
    bool hasRope = optionalTensorRef(info[4], "rope", &rope);
    TensorRef table = tensorRef(info[5], "blockTable");
    if (!info[6].IsObject()) attn::throwType("options must be an object");
    Napi::Object opt = info[6].As<Napi::Object>();
    std::vector<int32_t> rows = int32ArrayOpt(opt, "rows"), cuNew = int32ArrayOpt(opt, "cuNew"), startPos = int32ArrayOpt(opt, "startPos");

    const int64_t width = hasRope ? attn::kMlaLatent : attn::kMlaRow;
    if (latent.shape.size() != 2 || latent.shape[1] != width || latent.strides[1] != 1)
      attn::throwRange("latent must be [tokens, " + std::to_string(width) + "] with a contiguous last dimension");
    if (hasRope && (rope.shape != std::vector<int64_t>{latent.shape[0], attn::kMlaRope} || rope.strides[1] != 1 || rope.dtype != latent.dtype ||
                    !(rope.device() == latent.device())))
      attn::throwRange("rope must be [tokens, 64] like latent, contiguous in its last dimension");
    if (!(latent.device() == g.pool.device())) attn::throwRange("latent must be on the cache's device");
    if (g.fp8 ? (latent.dtype != attn::DType::F32 && latent.dtype != attn::DType::F16 && latent.dtype != attn::DType::BF16)
              : latent.dtype != g.pool.dtype)
      attn::throwRange("latent has the wrong dtype for the cache");
    if (rows.empty() || cuNew.size() != rows.size() + 1 || startPos.size() != rows.size() || cuNew[0] != 0 || cuNew.back() != latent.shape[0])
      attn::throwRange("rows, cuNew and startPos disagree with each other or with latent");

    attn::MlaAppendParams p;
    p.in_dtype = latent.dtype;
    p.latent = latent.data();
    p.latent_row_stride = latent.stride(0);
    p.rope = hasRope ? rope.data() : nullptr;
    p.rope_row_stride = hasRope ? rope.stride(0) : 0;
    p.cache = cacheView(g, layer, table, rows);
    const TableEntries entries(opt, table, g.pages);  // after cacheView's checkBlockTable
    p.batch = static_cast<int>(rows.size());
    p.total_new = static_cast<int>(latent.shape[0]);
    // As in pagedAppend: table entries without tokens still go in.
    if (p.total_new == 0 && entries.empty()) return info.Env().Undefined();

    const attn::Device& dev = g.pool.device();
    TableEntriesAt at(entries, table);
    attn::StoragePtr arraysS = toDevicePacked<int32_t>(dev, {&rows, &cuNew, &startPos, &entries.idx, &entries.pages},
                                                       {&p.cache.block_table_rows, &p.cu_new, &p.start_pos, &at.idx, &at.pages});
    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(std::vector<attn::StoragePtr>{
        g.pool.storage, g.fp8 ? g.scales.storage : nullptr, latent.storage, hasRope ? rope.storage : nullptr, table.storage, arraysS});
    launch(dev, [p, at, holds] {
      at.storeOnCpu();
      attn::cpu::mlaAppend(p);
    }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      at.storeOnCuda(c.stream);
      attn::cuda::mlaAppend(p, c.stream);
#endif
    });
    return info.Env().Undefined();
  });
}

Napi::Value mlaAttention(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef q = tensorRef(info[0], "q");
    LatentPool g = latentPool(info[1], info[2]);
    int layer = layerArg(info[3], g.layers);
    TensorRef table = tensorRef(info[4], "blockTable"), o = tensorRef(info[5], "out");
    TensorRef lse;
    bool hasLse = optionalTensorRef(info[6], "lse", &lse);
    if (!info[7].IsObject()) attn::throwType("options must be an object");
    Napi::Object opt = info[7].As<Napi::Object>();
    SequenceBatch batch(opt);

    if (q.shape.size() != 3 || q.shape[2] != attn::kMlaRow || q.strides[2] != 1) attn::throwRange("q must be [tokens, heads, 576], contiguous in its last dimension");
    if (!(q.device() == g.pool.device())) attn::throwRange("q must be on the cache's device");
    if (g.fp8 ? (q.dtype != attn::DType::F32 && q.dtype != attn::DType::F16 && q.dtype != attn::DType::BF16) : q.dtype != g.pool.dtype)
      attn::throwRange("q has the wrong dtype for the cache");
    if (o.shape != std::vector<int64_t>{q.shape[0], q.shape[1], attn::kMlaLatent} || o.dtype != q.dtype || !(o.device() == q.device()) || o.strides[2] != 1)
      attn::throwRange("out must be [tokens, heads, 512] with q's dtype and device");
    const int heads = static_cast<int>(q.shape[1]);
    if (heads <= 0) attn::throwRange("q must have at least one head");
    checkBlockTable(table, g.pool.device(), batch.rows);  // before table.shape[1] is read below
    batch.check(q.shape[0], table.shape[1] * g.pageSize);
    if (hasLse && (lse.shape != std::vector<int64_t>{q.shape[0], heads} || lse.dtype != attn::DType::F32 || !lse.contiguous() || !(lse.device() == q.device())))
      attn::throwRange("lse must be a contiguous f32 [tokens, heads] tensor on q's device");

    attn::MlaAttnParams p;
    setQueryFields(p, q, o, hasLse ? &lse : nullptr);
    p.cache = cacheView(g, layer, table, batch.rows);
    p.batch = static_cast<int>(batch.size());
    p.total_q = static_cast<int>(q.shape[0]);
    p.max_seqlen_q = batch.maxQ;
    p.max_seqlen_k = batch.maxK;
    p.heads = heads;
    p.scale = static_cast<float>(numberOpt(opt, "scale", 1.0));
    p.softcap = static_cast<float>(numberOpt(opt, "softcap", 0.0));
    p.causal = boolOpt(opt, "causal", true);
    p.force_mma = boolOpt(opt, "forceMma", false);  // tests, benchmarks (MlaAttnParams::force_mma)
    const int requestedSplits = intOpt(opt, "numSplits", 0);
    (void)requestedSplits;  // used by the CUDA path only
    BenchHook bench(opt);
    if (p.total_q == 0) return info.Env().Undefined();

    const attn::Device& dev = q.device();
    const SequenceBatchOnDevice onDev(dev, batch);
    p.cache.block_table_rows = onDev.rowsData();
    p.seq_lens = onDev.seqLensData();
    p.cu_seqlens_q = onDev.cuQData();
    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(std::vector<attn::StoragePtr>{
        q.storage, g.pool.storage, g.fp8 ? g.scales.storage : nullptr, table.storage, o.storage, hasLse ? lse.storage : nullptr,
        onDev.storage});
    launch(dev, [p, holds] { attn::cpu::mlaAttention(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      std::string why;
      if (!attn::cuda::mlaAttentionSupported(p, &why)) attn::throwRange("mlaDecode on " + dev.str() + ": " + why);
      attn::MlaAttnParams pc = p;
      pc.num_splits = requestedSplits > 0 ? requestedSplits : attn::cuda::mlaChooseSplits(pc, c.multiprocessors);
      const attn::StoragePtr ws = attachSplitWorkspace(dev, pc, attn::cuda::mlaWorkspaceFloats(pc));
      bench.run(c, [&] { attn::cuda::mlaAttention(pc, c.stream); });
#endif
    });
    return bench.result(info.Env());
  });
}

Napi::Value mlaCopyPages(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    LatentPool g = latentPool(info[0], info[1]);
    const PagePairs pairs = pagePairsOpt(info[2], g.pages);
    // Each layer is a plane of each array: the rows, then the fp8 scales.
    auto pages = [&](const TensorRef& t, int64_t rowBytes) {
      const int64_t pageBytes = rowBytes * g.pageSize;
      return PageArray{&t, pageBytes, g.layers, pageBytes * g.pages};
    };
    std::vector<PageArray> arrays{pages(g.pool, attn::kMlaRow * static_cast<int64_t>(attn::dtypeSize(g.pool.dtype)))};
    if (g.fp8) arrays.push_back(pages(g.scales, 2 * sizeof(float)));
    launchPageCopies(g.pool.device(), pairs, arrays);
    return info.Env().Undefined();
  });
}

}  // namespace

void registerMlaOps(Napi::Env env, Napi::Object exports) {
  exports.Set("mlaAppend", Napi::Function::New(env, mlaAppend, "mlaAppend"));
  exports.Set("mlaAttention", Napi::Function::New(env, mlaAttention, "mlaAttention"));
  exports.Set("mlaCopyPages", Napi::Function::New(env, mlaCopyPages, "mlaCopyPages"));
}

}  // namespace binding
