// info(): what this build has and what the machine offers.
#include "cpu/parallel.h"
#include "device_exec.h"
#include "errors.h"
#include "register.h"

#ifdef ATTN_WITH_CUDA
#include "runtime/cuda/cuda_context.h"
#endif

namespace binding {
namespace {

Napi::Value info(const Napi::CallbackInfo& cb) {
  return guarded(cb, [&]() -> Napi::Value {
    Napi::Env env = cb.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("builtWithCuda", builtWithCuda());
    int n = cudaDeviceCount();
    o.Set("cudaAvailable", n > 0);
    o.Set("cudaReason", cudaUnavailableReason());
    o.Set("cpuThreads", attn::cpu::threadCount());
    Napi::Array devices = Napi::Array::New(env);
#ifdef ATTN_WITH_CUDA
    for (int i = 0; i < n; ++i) {
      const attn::cuda::DeviceProps& p = attn::cuda::Context::get(i).props();
      Napi::Object d = Napi::Object::New(env);
      d.Set("index", i);
      d.Set("name", p.name);
      d.Set("sm", p.sm);
      d.Set("multiprocessors", p.multiprocessors);
      d.Set("totalMemory", static_cast<double>(p.totalMemory));
      d.Set("l2CacheBytes", static_cast<double>(p.l2CacheBytes));
      devices.Set(static_cast<uint32_t>(i), d);
    }
#endif
    o.Set("devices", devices);
    return o;
  });
}

}  // namespace

void registerInfo(Napi::Env env, Napi::Object exports) { exports.Set("info", Napi::Function::New(env, info, "info")); }

}  // namespace binding
