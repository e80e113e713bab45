// attention(q, k, v, out, lse, options): dense forward on the tensors' device.
#include <memory>

#include "block_mask.h"
#include "common/attention_params.h"
#include "common/error.h"
#include "common/quant.h"
#include "cpu/attention.h"
#include "cpu/quant_attention.h"
#include "device_exec.h"
#include "errors.h"
#include "host_arrays.h"
#include "params_reader.h"
#include "register.h"
#include "tensor_ref.h"

#ifdef ATTN_WITH_CUDA
#include "cuda/flash/flash_forward.h"
#include "cuda/quant/quant_forward.h"
#include "cuda/timing/event_timer.h"
#endif

namespace binding {
namespace {

void expectDims(const TensorRef& t, size_t n, const char* what) {
  if (t.shape.size() != n) attn::throwRange(std::string(what) + " must have " + std::to_string(n) + " dimensions");
  if (t.strides.back() != 1 && t.shape.back() > 1) attn::throwRange(std::string(what) + " must be contiguous in its last dimension");
}

// Validates cumulative offsets: starts at 0, non-decreasing, ends at `total`. Returns the max length.
int checkCuSeqlens(const std::vector<int32_t>& cu, size_t batch, int64_t total, const char* what) {
  if (cu.size() != batch + 1) attn::throwRange(std::string(what) + " must have batch + 1 entries");
  if (cu[0] != 0) attn::throwRange(std::string(what) + "[0] must be 0");
  int mx = 0;
  for (size_t i = 0; i < batch; ++i) {
    if (cu[i + 1] < cu[i]) attn::throwRange(std::string(what) + " must be non-decreasing");
    mx = std::max(mx, cu[i + 1] - cu[i]);
  }
  if (cu[batch] != total) attn::throwRange(std::string(what) + " must end at " + std::to_string(total));
  return mx;
}

Napi::Value attention(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef q = tensorRef(info[0], "q"), k = tensorRef(info[1], "k"), v = tensorRef(info[2], "v"),
              o = tensorRef(info[3], "out");
    TensorRef lse;
    bool hasLse = optionalTensorRef(info[4], "lse", &lse);
    if (!info[5].IsObject()) attn::throwType("options must be an object");
    Napi::Object opt = info[5].As<Napi::Object>();

    for (const TensorRef* t : {&k, &v, &o})
      if (!(t->device() == q.device())) attn::throwRange("q, k, v and out must be on one device");
    for (const TensorRef* t : {&k, &v, &o})
      if (t->dtype != q.dtype) attn::throwType("q, k, v and out must share one dtype");

    std::vector<int32_t> cuQ = int32ArrayOpt(opt, "cuSeqlensQ"), cuK = int32ArrayOpt(opt, "cuSeqlensK");
    bool varlen = !cuQ.empty();
    if (varlen != !cuK.empty()) attn::throwRange("options.cuSeqlensQ and options.cuSeqlensK go together");

    attn::AttnParams p;
    p.dtype = q.dtype;
    size_t rank = varlen ? 3 : 4;
    expectDims(q, rank, "q");
    expectDims(k, rank, "k");
    expectDims(v, rank, "v");
    expectDims(o, rank, "out");
    int r = varlen ? 0 : 1;  // index of the row dimension
    if (o.shape != q.shape) attn::throwRange("out must have q's shape");
    if (v.shape != k.shape) attn::throwRange("v must have k's shape");
    p.heads_q = static_cast<int>(q.shape[r + 1]);
    p.heads_kv = static_cast<int>(k.shape[r + 1]);
    p.head_dim = static_cast<int>(q.shape[r + 2]);
    if (k.shape[r + 2] != p.head_dim) attn::throwRange("k's head dimension must equal q's");
    if (p.heads_kv == 0 || p.heads_q % p.heads_kv != 0) attn::throwRange("q heads must be a multiple of k/v heads");
    if (varlen) {
      p.batch = static_cast<int>(cuQ.size()) - 1;
      if (p.batch < 1) attn::throwRange("options.cuSeqlensQ must have at least 2 entries");
      p.seqlen_q = checkCuSeqlens(cuQ, p.batch, q.shape[0], "options.cuSeqlensQ");
      p.seqlen_k = checkCuSeqlens(cuK, p.batch, k.shape[0], "options.cuSeqlensK");
      p.total_q = static_cast<int>(q.shape[0]);
      p.total_k = static_cast<int>(k.shape[0]);
    } else {
      p.batch = static_cast<int>(q.shape[0]);
      if (k.shape[0] != p.batch) attn::throwRange("k must have q's batch size");
      p.seqlen_q = static_cast<int>(q.shape[1]);
      p.seqlen_k = static_cast<int>(k.shape[1]);
      p.total_q = p.batch * p.seqlen_q;
      p.total_k = p.batch * p.seqlen_k;
    }
    auto setStrides = [&](const TensorRef& t, int64_t& bs, int64_t& rs, int64_t& hs) {
      bs = varlen ? 0 : t.stride(0);
      rs = t.stride(r);
      hs = t.stride(r + 1);
    };
    setStrides(q, p.q_batch_stride, p.q_row_stride, p.q_head_stride);
    setStrides(k, p.k_batch_stride, p.k_row_stride, p.k_head_stride);
    setStrides(v, p.v_batch_stride, p.v_row_stride, p.v_head_stride);
    setStrides(o, p.o_batch_stride, p.o_row_stride, p.o_head_stride);
    if (hasLse) {
      std::vector<int64_t> want = varlen ? std::vector<int64_t>{p.heads_q, p.total_q}
                                         : std::vector<int64_t>{p.batch, p.heads_q, p.seqlen_q};
      if (lse.shape != want || !lse.contiguous() || lse.dtype != attn::DType::F32 || !(lse.device() == q.device()))
        attn::throwRange("lse must be a contiguous f32 tensor of shape [" + std::string(varlen ? "heads, totalQ" : "batch, heads, seqQ") + "] on q's device");
    }

    p.scale = static_cast<float>(numberOpt(opt, "scale", 1.0));
    p.softcap = static_cast<float>(numberOpt(opt, "softcap", 0.0));
    p.causal = boolOpt(opt, "causal", false);
    p.window_left = intOpt(opt, "windowLeft", -1);
    p.window_right = intOpt(opt, "windowRight", -1);
    if (p.causal && (p.window_right < 0 || p.window_right > 0)) p.window_right = 0;
    std::vector<float> slopes = float32ArrayOpt(opt, "alibiSlopes");
    if (!slopes.empty() && static_cast<int>(slopes.size()) != p.heads_q) attn::throwRange("options.alibiSlopes must have one slope per q head");
    // Quantized forward (csrc/common/quant.h): 0 off, 1 int8-fp8, 2 int8, 3 fp8.
    const int quantized = intOpt(opt, "quantized", 0);
    if (quantized < 0 || quantized > 3) attn::throwRange("options.quantized must be 0, 1, 2 or 3");
    const attn::QuantMode mode = static_cast<attn::QuantMode>(quantized);
    p.quant_outliers = boolOpt(opt, "quantOutliers", false);
    if (p.quant_outliers && mode == attn::QuantMode::None) attn::throwRange("options.quantOutliers needs options.quantized");
    // Tests and benchmarks: the quantized forward's sm_80 kernel on a Hopper GPU (as the environment
    // variable ATTN_CUDA_FORCE_SM80, which jest's sandboxed process.env cannot reach).
    const bool forceSm80 = boolOpt(opt, "forceSm80", false);
    if (mode != attn::QuantMode::None && (p.softcap > 0.0f || !slopes.empty()))
      attn::throwRange("options.quantized supports neither options.softcap nor options.alibiSlopes");
    // Benchmark hook (scripts/, quantized CUDA only): time benchIters back-to-back calls with CUDA
    // events; returns [ms per call with preprocessing, ms per attention kernel alone]. Blocks.
    const int benchIters = intOpt(opt, "benchIters", 0);
    double benchAll = -1.0, benchKernel = -1.0;
    (void)benchIters;  // used by the CUDA path only
    (void)forceSm80;

    p.q = q.data();
    p.k = k.data();
    p.v = v.data();
    p.o = o.data();
    p.lse = hasLse ? reinterpret_cast<float*>(lse.data()) : nullptr;

    const attn::Device& dev = q.device();
    attn::StoragePtr cuS, slopeS;
    if (varlen) cuS = toDevicePacked<int32_t>(dev, {&cuQ, &cuK}, {&p.cu_seqlens_q, &p.cu_seqlens_k});
    if (!slopes.empty()) {
      slopeS = toDevice(dev, slopes);
      p.alibi_slopes = static_cast<const float*>(slopeS->data());
    }
    std::vector<attn::StoragePtr> maskS = readBlockMask(opt, dev, p);
    if (p.total_q == 0) return info.Env().Undefined();

    auto holds = std::make_shared<std::vector<attn::StoragePtr>>(
        std::vector<attn::StoragePtr>{q.storage, k.storage, v.storage, o.storage, hasLse ? lse.storage : nullptr, cuS, slopeS});
    holds->insert(holds->end(), maskS.begin(), maskS.end());
    if (!dev.isCuda() && p.dtype != attn::DType::F32 && p.dtype != attn::DType::F16 && p.dtype != attn::DType::BF16)
      attn::throwType(std::string("attention on cpu supports f32, f16 and bf16, not ") + attn::dtypeName(p.dtype));
    launch(dev, [p, holds, mode] {
      if (mode == attn::QuantMode::None) attn::cpu::attentionForward(p);
      else attn::cpu::quantAttentionForward(p, mode);
    }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      std::string why;
      if (mode != attn::QuantMode::None) {
        if (!attn::cuda::quantForwardSupported(p, mode, c.sm, &why)) attn::throwRange("attention on " + dev.str() + ": " + why);
        const attn::cuda::QuantForwardPlan plan =
            attn::cuda::quantForwardPlan(p, mode, varlen ? cuQ.data() : nullptr, varlen ? cuK.data() : nullptr);
        // Stream-ordered: these blocks return to the cache after the launches and are reused in order.
        attn::cuda::QuantForwardBuffers buf;
        attn::StoragePtr starts = toDevicePacked<int32_t>(dev, {&plan.q_start, &plan.k_start, &plan.kp_start}, {&buf.q_start, &buf.k_start, &buf.kp_start});
        attn::StoragePtr ws = allocate(dev, plan.workspace_bytes);
        buf.workspace = ws->data();
        buf.counters = splitCounters(dev, static_cast<size_t>(p.batch) * p.heads_kv);
        const int kernelSm = forceSm80 ? 80 : c.sm;  // picks the kernel only (support was checked above)
        if (benchIters <= 0) {
          attn::cuda::quantForward(p, mode, kernelSm, plan, buf, c.stream);
          return;
        }
        benchAll = attn::cuda::timeLaunches(c.stream, benchIters, [&] { attn::cuda::quantForward(p, mode, kernelSm, plan, buf, c.stream); });
        benchKernel = attn::cuda::timeLaunches(c.stream, benchIters, [&] { attn::cuda::quantForward(p, mode, kernelSm, plan, buf, c.stream, false); });
        return;
      }
      if (!attn::cuda::flashForwardSupported(p, c.sm, &why)) attn::throwRange("attention on " + dev.str() + ": " + why);
      attn::cuda::flashForward(p, c.sm, c.stream);
#endif
    });
    if (benchAll >= 0) {
      Napi::Array r = Napi::Array::New(info.Env(), 2);
      r.Set(0u, Napi::Number::New(info.Env(), benchAll));
      r.Set(1u, Napi::Number::New(info.Env(), benchKernel));
      return r;
    }
    return info.Env().Undefined();
  });
}

}  // namespace

void registerAttentionOps(Napi::Env env, Napi::Object exports) {
  exports.Set("attention", Napi::Function::New(env, attention, "attention"));
}

}  // namespace binding
