// Module entry: registers every op family. Context-aware (NAPI_MODULE_INIT via Napi addon
// macros): each environment (main thread, worker_threads) gets its own AddonData.
#include <napi.h>

#if !defined(_WIN32)
#include <dlfcn.h>
#endif

#include "addon_data.h"
#include "register.h"
#include "storage_handle.h"

namespace {

// The CPU stream and its thread pool are process-wide and outlive any one environment. When the
// only environment that loaded the addon is a worker thread, Node unloads the library as that
// worker exits, while a task it enqueued may still be running: the pool would then execute
// unmapped code. Marking the already-loaded library RTLD_NODELETE keeps it mapped for the life
// of the process (the tasks own their storages, so they finish safely).
void pinLibrary() {
#if !defined(_WIN32)
  static const bool pinned = [] {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&pinLibrary), &info) == 0 || info.dli_fname == nullptr) return false;
    return dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) != nullptr;  // the handle is never closed
  }();
  (void)pinned;
#endif
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  pinLibrary();
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
