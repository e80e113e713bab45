// Reading the plain-number options of an op call. TypeScript validates and names user errors;
// these checks only keep a malformed call from reaching a kernel.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace binding {

double numberOpt(Napi::Object o, const char* key, double fallback);
int intOpt(Napi::Object o, const char* key, int fallback);
bool boolOpt(Napi::Object o, const char* key, bool fallback);
// An optional Int32Array option (host memory), copied; empty when absent.
std::vector<int32_t> int32ArrayOpt(Napi::Object o, const char* key);
std::vector<float> float32ArrayOpt(Napi::Object o, const char* key);

// The `src` / `dst` page lists of a page-copy call (options object `o`), checked to pair up and to
// lie in [0, pages).
struct PagePairs {
  std::vector<int32_t> src, dst;
};
PagePairs pagePairsOpt(Napi::Value o, int64_t pages);

}  // namespace binding
