// Tensor memory: allocation, host<->device transfers, fill, strided copy, reads as Promises.
#include <cmath>
#include <cstring>
#include <memory>

#include "async_work.h"
#include "common/error.h"
#include "cpu/tensor_ops.h"
#include "device_exec.h"
#include "errors.h"
#include "host_codec.h"
#include "register.h"
#include "storage_handle.h"
#include "tensor_ref.h"

#ifdef ATTN_WITH_CUDA
#include "cuda/check.h"
#include "cuda/tensor/tensor_ops.h"
#include "cuda/timing/read_floor.h"
#endif

namespace binding {
namespace {

size_t byteCount(Napi::Value v, const char* what) {
  if (!v.IsNumber()) attn::throwType(std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 1.0e15) attn::throwRange(std::string(what) + " must be a non-negative integer");
  return static_cast<size_t>(d);
}

attn::DType dtypeArg(Napi::Value v) {
  if (!v.IsNumber()) attn::throwType("dtype code must be a number");
  int c = v.As<Napi::Number>().Int32Value();
  if (c < 0 || c > static_cast<int>(attn::DType::INT32)) attn::throwRange("unknown dtype code");
  return static_cast<attn::DType>(c);
}

void requireContiguous(const TensorRef& t, const char* what) {
  if (!t.contiguous()) attn::throwRange(std::string(what) + " must be contiguous");
}

Napi::Value empty(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    attn::Device d = parseDevice(info[0], "device");
    return StorageHandle::wrap(info.Env(), allocate(d, byteCount(info[1], "bytes")));
  });
}

Napi::Value fromHost(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    attn::Device d = parseDevice(info[0], "device");
    attn::DType dt = dtypeArg(info[1]);
    int64_t n = 0;
    std::vector<uint8_t> bytes = encode(info[2], dt, "data", &n);
    attn::StoragePtr s = allocate(d, bytes.size());
    if (d.isCuda()) {
      upload(d, s, 0, std::move(bytes));
    } else if (!bytes.empty()) {
      std::memcpy(s->data(), bytes.data(), bytes.size());  // fresh storage: no enqueued work can touch it
    }
    return StorageHandle::wrap(info.Env(), s);
  });
}

Napi::Value write(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef t = tensorRef(info[0], "tensor");
    requireContiguous(t, "tensor");
    int64_t n = 0;
    std::vector<uint8_t> bytes = encode(info[1], t.dtype, "data", &n);
    if (n != t.numel()) attn::throwRange("data has " + std::to_string(n) + " elements, the tensor " + std::to_string(t.numel()));
    upload(t.device(), t.storage, static_cast<size_t>(t.offset) * attn::dtypeSize(t.dtype), std::move(bytes));
    return info.Env().Undefined();
  });
}

Napi::Value fill(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef t = tensorRef(info[0], "tensor");
    requireContiguous(t, "tensor");
    if (!info[1].IsNumber()) attn::throwType("bits must be a number");
    attn::FillParams p;
    p.dst = t.data();
    p.numel = t.numel();
    p.elem_size = static_cast<int>(attn::dtypeSize(t.dtype));
    p.bits = info[1].As<Napi::Number>().Uint32Value();
    attn::StoragePtr hold = t.storage;
    launch(t.device(), [p, hold] { attn::cpu::fill(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      attn::cuda::fill(p, c.stream);
#endif
    });
    return info.Env().Undefined();
  });
}

Napi::Value encodeScalar(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    attn::DType dt = dtypeArg(info[0]);
    int64_t n = 0;
    Napi::Array one = Napi::Array::New(info.Env(), 1);
    one.Set(0u, info[1]);
    std::vector<uint8_t> bytes = encode(one, dt, "value", &n);
    uint32_t bits = 0;
    std::memcpy(&bits, bytes.data(), bytes.size());
    return Napi::Number::New(info.Env(), bits);
  });
}

// randomNormal(tensor, seedHigh, seedLow, mean, std): fills a contiguous float tensor.
Napi::Value randomNormal(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef t = tensorRef(info[0], "tensor");
    requireContiguous(t, "tensor");
    if (t.dtype != attn::DType::F32 && t.dtype != attn::DType::F16 && t.dtype != attn::DType::BF16)
      attn::throwType(std::string("randn supports f32, f16 and bf16, not ") + attn::dtypeName(t.dtype));
    attn::RandomParams p;
    p.dst = t.data();
    p.numel = t.numel();
    p.dtype = static_cast<int>(t.dtype);
    p.seed = (static_cast<uint64_t>(info[1].As<Napi::Number>().Uint32Value()) << 32) | info[2].As<Napi::Number>().Uint32Value();
    p.mean = info[3].As<Napi::Number>().FloatValue();
    p.std = info[4].As<Napi::Number>().FloatValue();
    attn::StoragePtr hold = t.storage;
    launch(t.device(), [p, hold] { attn::cpu::randomNormal(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      attn::cuda::randomNormal(p, c.stream);
#endif
    });
    return info.Env().Undefined();
  });
}

Napi::Value copy(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef dst = tensorRef(info[0], "dst");
    TensorRef src = tensorRef(info[1], "src");
    if (!(dst.device() == src.device())) attn::throwRange("copy: dst and src must be on the same device");
    if (dst.dtype != src.dtype) attn::throwType("copy: dst and src must have the same dtype");
    if (dst.shape != src.shape) attn::throwRange("copy: dst and src must have the same shape");
    attn::StridedCopyParams p;
    p.ndim = static_cast<int>(dst.shape.size());
    for (int i = 0; i < p.ndim; ++i) {
      p.shape[i] = dst.shape[i];
      p.src_strides[i] = src.strides[i];
      p.dst_strides[i] = dst.strides[i];
    }
    p.elem_size = static_cast<int>(attn::dtypeSize(dst.dtype));
    p.numel = dst.numel();
    p.src = src.data();
    p.dst = dst.data();
    attn::StoragePtr hs = src.storage, hd = dst.storage;
    launch(dst.device(), [p, hs, hd] { attn::cpu::copyStrided(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      attn::cuda::copyStrided(p, c.stream);
#endif
    });
    return info.Env().Undefined();
  });
}

// Copies a contiguous tensor to another device; resolves with the new storage.
Napi::Value transfer(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef src = tensorRef(info[0], "tensor");
    requireContiguous(src, "tensor");
    attn::Device to = parseDevice(info[1], "device");
    size_t bytes = static_cast<size_t>(src.numel()) * attn::dtypeSize(src.dtype);
    attn::StoragePtr dst = allocate(to, bytes);
    auto staged = std::make_shared<std::vector<uint8_t>>();
    attn::FencePtr f = download(src.storage, static_cast<size_t>(src.offset) * attn::dtypeSize(src.dtype), bytes, staged);
    // The destination is only handed out when the promise resolves, so nothing else can be
    // ordered against the upload that the off-thread step enqueues.
    return whenDone(info.Env(), f, [to, dst, staged] { upload(to, dst, 0, std::move(*staged)); },
                    [dst](Napi::Env env) -> Napi::Value { return StorageHandle::wrap(env, dst); });
  });
}

Napi::Value read(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef t = tensorRef(info[0], "tensor");
    requireContiguous(t, "tensor");
    size_t bytes = static_cast<size_t>(t.numel()) * attn::dtypeSize(t.dtype);
    auto out = std::make_shared<std::vector<uint8_t>>();
    attn::FencePtr f = download(t.storage, static_cast<size_t>(t.offset) * attn::dtypeSize(t.dtype), bytes, out);
    attn::DType dt = t.dtype;
    return whenDone(info.Env(), f, [out, dt] { decodeInPlace(*out, dt); },
                    [out, dt](Napi::Env env) { return toTypedArray(env, std::move(*out), dt); });
  });
}

Napi::Value synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    attn::Device d = parseDevice(info[0], "device");
    return whenDone(info.Env(), fence(d), nullptr, nullptr);
  });
}

Napi::Value stats(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    attn::MemoryStats s = memoryStats(parseDevice(info[0], "device"));
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("allocatedBytes", static_cast<double>(s.allocatedBytes));
    o.Set("reservedBytes", static_cast<double>(s.reservedBytes));
    o.Set("peakAllocatedBytes", static_cast<double>(s.peakAllocatedBytes));
    o.Set("liveStorages", static_cast<double>(s.liveStorages));
    o.Set("allocations", static_cast<double>(s.allocations));
    o.Set("cacheHits", static_cast<double>(s.cacheHits));
    return o;
  });
}

Napi::Value emptyCacheJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    emptyCache(parseDevice(info[0], "device"));
    return info.Env().Undefined();
  });
}

// Benchmark hook (scripts/): readFloor(tensor, windowBytes, windows, iters) -> { ms, blocks, threads },
// the device time of just reading windowBytes of the tensor per launch (see cuda/timing/read_floor.h).
Napi::Value readFloor(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorRef t = tensorRef(info[0], "tensor");
    requireContiguous(t, "tensor");
    if (!t.device().isCuda()) attn::throwType("readFloor needs a CUDA tensor");
    const size_t window = byteCount(info[1], "windowBytes");
    const size_t windows = byteCount(info[2], "windows");
    const size_t iters = byteCount(info[3], "iters");
    if (window == 0 || windows == 0 || window * windows > t.numel() * attn::dtypeSize(t.dtype))
      attn::throwRange("readFloor: windowBytes * windows must be positive and fit in the tensor");
    if (iters == 0 || iters > 10000 || windows > 10000) attn::throwRange("readFloor: iters and windows must be in [1, 10000]");
    double ms = -1.0, blocks = 0.0, threads = 0.0;
    launch(t.device(), [] {}, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
      const attn::cuda::ReadFloor r = attn::cuda::timeReadFloor(t.data(), static_cast<int64_t>(window), static_cast<int>(windows),
                                                                static_cast<int>(iters), c.multiprocessors, c.stream);
      ms = r.ms;
      blocks = r.blocks;
      threads = r.threads;
#endif
    });
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("ms", ms);
    o.Set("blocks", blocks);
    o.Set("threads", threads);
    return o;
  });
}

}  // namespace

void registerMemoryOps(Napi::Env env, Napi::Object exports) {
  exports.Set("empty", Napi::Function::New(env, empty, "empty"));
  exports.Set("fromHost", Napi::Function::New(env, fromHost, "fromHost"));
  exports.Set("write", Napi::Function::New(env, write, "write"));
  exports.Set("fill", Napi::Function::New(env, fill, "fill"));
  exports.Set("encodeScalar", Napi::Function::New(env, encodeScalar, "encodeScalar"));
  exports.Set("randomNormal", Napi::Function::New(env, randomNormal, "randomNormal"));
  exports.Set("copy", Napi::Function::New(env, copy, "copy"));
  exports.Set("transfer", Napi::Function::New(env, transfer, "transfer"));
  exports.Set("read", Napi::Function::New(env, read, "read"));
  exports.Set("synchronize", Napi::Function::New(env, synchronize, "synchronize"));
  exports.Set("memoryStats", Napi::Function::New(env, stats, "memoryStats"));
  exports.Set("emptyCache", Napi::Function::New(env, emptyCacheJs, "emptyCache"));
  exports.Set("readFloor", Napi::Function::New(env, readFloor, "readFloor"));
}

}  // namespace binding
