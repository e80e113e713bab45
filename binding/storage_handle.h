// The JS object that owns a native Storage. Type-tagged, so a forged or foreign object passed
// where a storage is expected is rejected instead of being dereferenced.
#pragma once
#include <napi.h>

#include <string>

#include "runtime/storage.h"

namespace binding {

class StorageHandle : public Napi::ObjectWrap<StorageHandle> {
 public:
  static Napi::Function define(Napi::Env env);
  static Napi::Object wrap(Napi::Env env, attn::StoragePtr storage);
  // The storage behind `value`; throws TypeError naming `what` + `suffix` if it is not a live
  // handle (the name is put together only for the error).
  static attn::StoragePtr unwrap(Napi::Value value, const std::string& what, const char* suffix = "");

  explicit StorageHandle(const Napi::CallbackInfo& info);

 private:
  Napi::Value release(const Napi::CallbackInfo& info);
  Napi::Value bytes(const Napi::CallbackInfo& info);
  Napi::Value released(const Napi::CallbackInfo& info);

  attn::StoragePtr storage_;  // dropped by release() or by the GC finalizer
};

}  // namespace binding
