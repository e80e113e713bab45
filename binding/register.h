// Each binding file exposes one register function; addon.cc calls them all.
#pragma once
#include <napi.h>

namespace binding {

void registerMemoryOps(Napi::Env env, Napi::Object exports);
void registerAttentionOps(Napi::Env env, Napi::Object exports);
void registerPagedOps(Napi::Env env, Napi::Object exports);
void registerInfo(Napi::Env env, Napi::Object exports);
void registerPageTopKOps(Napi::Env env, Napi::Object exports);
void registerMlaOps(Napi::Env env, Napi::Object exports);

}  // namespace binding
