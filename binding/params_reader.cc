#include "params_reader.h"

#include <cmath>
#include <cstring>

#include "common/error.h"

namespace binding {

double numberOpt(Napi::Object o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) attn::throwType(std::string("options.") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int intOpt(Napi::Object o, const char* key, int fallback) {
  double d = numberOpt(o, key, fallback);
  if (!std::isfinite(d) || d != std::floor(d) || d < -2147483648.0 || d > 2147483647.0)
    attn::throwRange(std::string("options.") + key + " must be an integer");
  return static_cast<int>(d);
}

bool boolOpt(Napi::Object o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) attn::throwType(std::string("options.") + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

namespace {
template <typename T, napi_typedarray_type kType>
std::vector<T> typedOpt(Napi::Object o, const char* key, const char* typeName) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kType)
    attn::throwType(std::string("options.") + key + " must be an " + typeName);
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  std::vector<T> out(ta.ElementLength());
  if (!out.empty())
    std::memcpy(out.data(), static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), out.size() * sizeof(T));
  return out;
}
}  // namespace

std::vector<int32_t> int32ArrayOpt(Napi::Object o, const char* key) {
  return typedOpt<int32_t, napi_int32_array>(o, key, "Int32Array");
}
std::vector<float> float32ArrayOpt(Napi::Object o, const char* key) {
  return typedOpt<float, napi_float32_array>(o, key, "Float32Array");
}

PagePairs pagePairsOpt(Napi::Value o, int64_t pages) {
  if (!o.IsObject()) attn::throwType("options must be an object");
  PagePairs pp{int32ArrayOpt(o.As<Napi::Object>(), "src"), int32ArrayOpt(o.As<Napi::Object>(), "dst")};
  if (pp.src.size() != pp.dst.size()) attn::throwRange("src and dst must have one length");
  for (size_t i = 0; i < pp.src.size(); ++i)
    if (pp.src[i] < 0 || pp.src[i] >= pages || pp.dst[i] < 0 || pp.dst[i] >= pages) attn::throwRange("page index out of range");
  return pp;
}

}  // namespace binding
