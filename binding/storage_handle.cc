#include "storage_handle.h"

#include "addon_data.h"
#include "common/error.h"

namespace binding {
namespace {

// Random 128-bit tag identifying StorageHandle objects created by this addon.
const napi_type_tag kStorageTag = {0x6a1f3c9e5b7d4e21ULL, 0x9c0b8e7a2d4f6153ULL};

// Set while native code constructs a handle, so `new StorageHandle()` from JS is refused.
thread_local attn::StoragePtr* t_pending = nullptr;

}  // namespace

Napi::Function StorageHandle::define(Napi::Env env) {
  return DefineClass(env, "StorageHandle",
                     {InstanceMethod<&StorageHandle::release>("release"),
                      InstanceAccessor<&StorageHandle::bytes>("bytes"),
                      InstanceAccessor<&StorageHandle::released>("released")});
}

StorageHandle::StorageHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StorageHandle>(info) {
  if (!t_pending) throw Napi::TypeError::New(info.Env(), "StorageHandle cannot be constructed from JavaScript");
  storage_ = std::move(*t_pending);
  napi_status st = napi_type_tag_object(info.Env(), info.This(), &kStorageTag);
  if (st != napi_ok) throw Napi::Error::New(info.Env(), "failed to tag StorageHandle");
}

Napi::Object StorageHandle::wrap(Napi::Env env, attn::StoragePtr storage) {
  t_pending = &storage;
  Napi::Object obj;
  try {
    obj = addonData(env).storageCtor.New({});
  } catch (...) {
    t_pending = nullptr;
    throw;
  }
  t_pending = nullptr;
  return obj;
}

attn::StoragePtr StorageHandle::unwrap(Napi::Value value, const std::string& what, const char* suffix) {
  Napi::Env env = value.Env();
  bool tagged = false;
  if (value.IsObject()) napi_check_object_type_tag(env, value, &kStorageTag, &tagged);
  if (!tagged) attn::throwType(what + suffix + " is not a tensor storage created by attn-cuda");
  StorageHandle* h = Napi::ObjectWrap<StorageHandle>::Unwrap(value.As<Napi::Object>());
  if (!h->storage_) attn::throwType(what + suffix + " has been disposed");
  return h->storage_;
}

Napi::Value StorageHandle::release(const Napi::CallbackInfo& info) {
  storage_.reset();
  return info.Env().Undefined();
}

Napi::Value StorageHandle::bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), storage_ ? static_cast<double>(storage_->bytes()) : 0.0);
}

Napi::Value StorageHandle::released(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !storage_);
}

}  // namespace binding
