#include "errors.h"

namespace binding {

Napi::Error toJsError(Napi::Env env, const std::exception& e) {
  if (const auto* ae = dynamic_cast<const attn::Error*>(&e)) {
    switch (ae->kind()) {
      case attn::ErrorKind::TypeError: return Napi::TypeError::New(env, ae->what());
      case attn::ErrorKind::RangeError: return Napi::RangeError::New(env, ae->what());
      case attn::ErrorKind::Error: break;
    }
  }
  return Napi::Error::New(env, e.what());
}

}  // namespace binding
