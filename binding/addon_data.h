// Per-environment state (main thread and each worker_thread get their own): keeps the addon
// context-aware, with no JS handles in static storage.
#pragma once
#include <napi.h>

namespace binding {

struct AddonData {
  Napi::FunctionReference storageCtor;
};

inline AddonData& addonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace binding
