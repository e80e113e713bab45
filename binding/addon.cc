// Module entry: registers every op family. Context-aware (NAPI_MODULE_INIT via Napi addon
// macros): each environment (main thread, worker_threads) gets its own AddonData.
#include <napi.h>

#include "addon_data.h"
#include "register.h"
#include "storage_handle.h"

namespace {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new binding::AddonData();  // freed by the environment's cleanup (SetInstanceData)
  env.SetInstanceData<binding::AddonData>(data);
  Napi::Function ctor = binding::StorageHandle::define(env);
  data->storageCtor = Napi::Persistent(ctor);
  exports.Set("StorageHandle", ctor);
  binding::registerMemoryOps(env, exports);
  binding::registerAttentionOps(env, exports);
  binding::registerPagedOps(env, exports);
  binding::registerInfo(env, exports);
  binding::registerPageTopKOps(env, exports);
  binding::registerMlaOps(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(attn_cuda, init)
