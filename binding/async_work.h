// Promise plumbing: a libuv worker waits on a fence (so the JS thread never blocks on device
// work), runs an optional step off-thread, then resolves on the JS thread.
#pragma once
#include <napi.h>

#include <functional>

#include "runtime/fence.h"

namespace binding {

using OffThreadStep = std::function<void()>;
using ResolveStep = std::function<Napi::Value(Napi::Env)>;

// Returns a Promise settled after fence->wait() and `work` (both off-thread), resolved with
// resolve(env) or rejected with the native error mapped to its JS class.
Napi::Promise whenDone(Napi::Env env, attn::FencePtr fence, OffThreadStep work, ResolveStep resolve);

}  // namespace binding
