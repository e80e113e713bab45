// The one place native exceptions become JS exceptions: attn::Error keeps its class
// (TypeError / RangeError / Error), anything else becomes Error.
#pragma once
#include <napi.h>

#include <exception>
#include <utility>

#include "common/error.h"

namespace binding {

Napi::Error toJsError(Napi::Env env, const std::exception& e);

// Runs fn; a thrown native exception is rethrown as the matching JS error.
template <typename Fn>
auto guarded(const Napi::CallbackInfo& info, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw toJsError(info.Env(), e);
  }
}

}  // namespace binding
