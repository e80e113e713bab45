// Multi-head latent attention ops: mlaAppend, mlaAttention, mlaCopyPages. The pool tensor is the
// whole latent cache, [layers, pages, pageSize, 576] contiguous (f32/f16/bf16/fp8e4m3), and an fp8
// pool comes with its scales, [layers, pages, pageSize, 2] f32. lib/paged_latent_cache.ts owns the
// page bookkeeping (lib/page_table.ts) and guarantees every block-table entry a call touches is live.
#include <memory>

#include "common/error.h"
#include "common/mla_params.h"
#include "common/paged_params.h"
#include "cpu/mla_attention.h"
#include "cpu/paged_attention.h"
#include "device_exec.h"
#include "errors.h"
#include "host_arrays.h"
#include "params_reader.h"
#include "register.h"
#include "tensor_ref.h"

#ifdef ATTN_WITH_CUDA
#include "cuda/mla/mla.h"
#include "cuda/paged/paged_attention.h"
#include "cuda/timing/event_timer.h"
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

int layerArg(Napi::Value v, const LatentPool& g) {
  if (!v.IsNumber()) attn::throwType("layer must be a number");
  int layer = v.As<Napi::Number>().Int32Value();
  if (layer < 0 || layer >= g.layers) attn::throwRange("layer " + std::to_string(layer) + " is out of range");
  return layer;
}

attn::MlaCacheView cacheView(const LatentPool& g, int layer, const TensorRef& table, const std::vector<int32_t>& rows) {
  if (table.shape.size() != 2 || !table.contiguous() || table.dtype != attn::DType::INT32 || !(table.device() == g.pool.device()))
    attn::throwRange("blockTable must be a contiguous 2-d int32 tensor on the pool's device");
  for (int32_t r : rows)
    if (r < 0 || r >= table.shape[0]) attn::throwRange("block table row " + std::to_string(r) + " is out of range");
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
    int layer = layerArg(info[2], g);
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
    p.batch = static_cast<int>(rows.size());
    p.total_new = static_cast<int>(latent.shape[0]);
    if (p.total_new == 0) return info.Env().Undefined();

    const attn::Device& dev = g.pool.device();
    attn::StoragePtr rowsS = toDevice(dev, rows), cuS = toDevice(dev, cuNew), startS = toDevice(dev, startPos);
    p.cache.block_table_rows = static_cast<const int32_t*>(rowsS->data());
    p.cu_new = static_cast<const int32_t*>(cuS->data());
    p.start_pos = static_cast<const int32_t*>(startS->data());
    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(std::vector<attn::StoragePtr>{
        g.pool.storage, g.fp8 ? g.scales.storage : nullptr, latent.storage, hasRope ? rope.storage : nullptr, table.storage, rowsS, cuS, startS});
    launch(dev, [p, holds] { attn::cpu::mlaAppend(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
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
    int layer = layerArg(info[3], g);
    TensorRef table = tensorRef(info[4], "blockTable"), o = tensorRef(info[5], "out");
    TensorRef lse;
    bool hasLse = optionalTensorRef(info[6], "lse", &lse);
    if (!info[7].IsObject()) attn::throwType("options must be an object");
    Napi::Object opt = info[7].As<Napi::Object>();
    std::vector<int32_t> rows = int32ArrayOpt(opt, "rows"), seqLens = int32ArrayOpt(opt, "seqLens"), cuQ = int32ArrayOpt(opt, "cuSeqlensQ");

    if (q.shape.size() != 3 || q.shape[2] != attn::kMlaRow || q.strides[2] != 1) attn::throwRange("q must be [tokens, heads, 576], contiguous in its last dimension");
    if (!(q.device() == g.pool.device())) attn::throwRange("q must be on the cache's device");
    if (g.fp8 ? (q.dtype != attn::DType::F32 && q.dtype != attn::DType::F16 && q.dtype != attn::DType::BF16) : q.dtype != g.pool.dtype)
      attn::throwRange("q has the wrong dtype for the cache");
    if (o.shape != std::vector<int64_t>{q.shape[0], q.shape[1], attn::kMlaLatent} || o.dtype != q.dtype || !(o.device() == q.device()) || o.strides[2] != 1)
      attn::throwRange("out must be [tokens, heads, 512] with q's dtype and device");
    const int heads = static_cast<int>(q.shape[1]);
    if (heads <= 0) attn::throwRange("q must have at least one head");
    const size_t batch = rows.size();
    if (batch == 0 || seqLens.size() != batch) attn::throwRange("rows and seqLens must have one entry per sequence");
    if (cuQ.empty() ? static_cast<int64_t>(batch) != q.shape[0] : (cuQ.size() != batch + 1 || cuQ[0] != 0 || cuQ.back() != q.shape[0]))
      attn::throwRange("q rows disagree with the batch (cuSeqlensQ)");
    int maxQ = 1, maxK = 0;
    for (size_t b = 0; b < batch; ++b) {
      int nq = cuQ.empty() ? 1 : cuQ[b + 1] - cuQ[b];
      if (nq < 0 || nq > seqLens[b]) attn::throwRange("each sequence needs at least as many cached tokens as queries");
      if (static_cast<int64_t>(seqLens[b]) > table.shape[1] * g.pageSize) attn::throwRange("seqLens exceeds the block table");
      maxQ = std::max(maxQ, nq);
      maxK = std::max(maxK, seqLens[b]);
    }
    if (hasLse && (lse.shape != std::vector<int64_t>{q.shape[0], heads} || lse.dtype != attn::DType::F32 || !lse.contiguous() || !(lse.device() == q.device())))
      attn::throwRange("lse must be a contiguous f32 [tokens, heads] tensor on q's device");

    attn::MlaAttnParams p;
    p.dtype = q.dtype;
    p.q = q.data();
    p.o = o.data();
    p.lse = hasLse ? reinterpret_cast<float*>(lse.data()) : nullptr;
    p.q_row_stride = q.stride(0);
    p.q_head_stride = q.stride(1);
    p.o_row_stride = o.stride(0);
    p.o_head_stride = o.stride(1);
    p.cache = cacheView(g, layer, table, rows);
    p.batch = static_cast<int>(batch);
    p.total_q = static_cast<int>(q.shape[0]);
    p.max_seqlen_q = maxQ;
    p.max_seqlen_k = maxK;
    p.heads = heads;
    p.scale = static_cast<float>(numberOpt(opt, "scale", 1.0));
    p.softcap = static_cast<float>(numberOpt(opt, "softcap", 0.0));
    p.causal = boolOpt(opt, "causal", true);
    p.force_mma = boolOpt(opt, "forceMma", false);  // tests, benchmarks (MlaAttnParams::force_mma)
    const int requestedSplits = intOpt(opt, "numSplits", 0);
    // Benchmark hook (scripts/): launch benchIters times back to back and return the device ms per
    // launch measured by CUDA events. Blocks; never used by lib/.
    const int benchIters = intOpt(opt, "benchIters", 0);
    double benchMs = -1.0;
    (void)requestedSplits;  // both used by the CUDA path only
    (void)benchIters;
    if (p.total_q == 0) return info.Env().Undefined();

    const attn::Device& dev = q.device();
    attn::StoragePtr rowsS = toDevice(dev, rows), lensS = toDevice(dev, seqLens), cuS;
    p.cache.block_table_rows = static_cast<const int32_t*>(rowsS->data());
    p.seq_lens = static_cast<const int32_t*>(lensS->data());
    if (!cuQ.empty()) {
      cuS = toDevice(dev, cuQ);
      p.cu_seqlens_q = static_cast<const int32_t*>(cuS->data());
    }
    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(std::vector<attn::StoragePtr>{
        q.storage, g.pool.storage, g.fp8 ? g.scales.storage : nullptr, table.storage, o.storage, hasLse ? lse.storage : nullptr, rowsS, lensS, cuS});
    launch(dev, [p, holds] { attn::cpu::mlaAttention(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      std::string why;
      if (!attn::cuda::mlaAttentionSupported(p, &why)) attn::throwRange("mlaDecode on " + dev.str() + ": " + why);
      attn::MlaAttnParams pc = p;
      pc.num_splits = requestedSplits > 0 ? requestedSplits : attn::cuda::mlaChooseSplits(pc, c.multiprocessors);
      const int64_t floats = attn::cuda::mlaWorkspaceFloats(pc);
      attn::StoragePtr ws;  // stream-ordered: back to the cache after this launch, reused in order
      if (floats > 0) {
        ws = allocate(dev, static_cast<size_t>(floats) * sizeof(float));
        pc.workspace = static_cast<float*>(ws->data());
        pc.workspace_floats = floats;
      }
      if (benchIters <= 0) {
        attn::cuda::mlaAttention(pc, c.stream);
        return;
      }
      benchMs = attn::cuda::timeLaunches(c.stream, benchIters, [&] { attn::cuda::mlaAttention(pc, c.stream); });
#endif
    });
    if (benchMs >= 0) return Napi::Number::New(info.Env(), benchMs);
    return info.Env().Undefined();
  });
}

Napi::Value mlaCopyPages(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    LatentPool g = latentPool(info[0], info[1]);
    const PagePairs pairs = pagePairsOpt(info[2], g.pages);
    const std::vector<int32_t>& src = pairs.src;
    const std::vector<int32_t>& dst = pairs.dst;
    if (src.empty()) return info.Env().Undefined();
    const attn::Device& dev = g.pool.device();
    attn::StoragePtr srcS = toDevice(dev, src), dstS = toDevice(dev, dst);
    // One page copy per array (the rows, then the fp8 scales), each over every layer.
    auto pageCopy = [&](const TensorRef& t, int64_t rowBytes) {
      attn::PageCopyParams p;
      p.pool = t.data();
      p.page_bytes = rowBytes * g.pageSize;
      p.planes = g.layers;
      p.plane_stride_bytes = p.page_bytes * g.pages;
      p.count = static_cast<int>(src.size());
      p.src = static_cast<const int32_t*>(srcS->data());
      p.dst = static_cast<const int32_t*>(dstS->data());
      return p;
    };
    std::vector<attn::PageCopyParams> copies{pageCopy(g.pool, attn::kMlaRow * static_cast<int64_t>(attn::dtypeSize(g.pool.dtype)))};
    if (g.fp8) copies.push_back(pageCopy(g.scales, 2 * sizeof(float)));
    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(
        std::vector<attn::StoragePtr>{g.pool.storage, g.fp8 ? g.scales.storage : nullptr, srcS, dstS});
    launch(dev, [copies, holds] { for (const auto& p : copies) attn::cpu::copyPages(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      for (const auto& p : copies) attn::cuda::copyPages(p, c.stream);
#endif
    });
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
