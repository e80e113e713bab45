#include "tensor_ref.h"

#include <cmath>

#include "common/error.h"
#include "storage_handle.h"

namespace binding {
namespace {

int64_t intField(Napi::Object obj, const char* key, const std::string& what) {
  Napi::Value v = obj.Get(key);
  if (!v.IsNumber()) attn::throwType(what + "." + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > 9.0e15) attn::throwRange(what + "." + key + " must be a non-negative integer");
  return static_cast<int64_t>(d);
}

std::vector<int64_t> intArray(Napi::Object obj, const char* key, const std::string& what) {
  Napi::Value v = obj.Get(key);
  if (!v.IsArray()) attn::throwType(what + "." + key + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > 8) attn::throwRange(what + "." + key + " has more than 8 dimensions");
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) attn::throwType(what + "." + key + "[" + std::to_string(i) + "] must be a number");
    double d = e.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > 9.0e15)
      attn::throwRange(what + "." + key + "[" + std::to_string(i) + "] must be a non-negative integer");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

// A checked element count, stride or offset (as a double: JS numbers).
int64_t layoutInt(double d, const std::string& what, const char* field) {
  if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > 9.0e15) attn::throwRange(what + ".layout: " + field + " must be a non-negative integer");
  return static_cast<int64_t>(d);
}

// The Tensor's `layout` (lib/tensor.ts): [dtypeCode, offset, ndim, shape..., strides...] in one
// Float64Array, read with one call instead of a property and element lookup per field (a decode
// call passes five tensors; those lookups were most of its binding time). False when absent, so
// descriptors without it (forged in tests) take the field-by-field path.
bool readLayout(Napi::Object obj, const std::string& what, TensorRef& t) {
  Napi::Value v = obj.Get("layout");
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) return false;
  Napi::Float64Array a = v.As<Napi::Float64Array>();
  const size_t n = a.ElementLength();
  if (n < 3) attn::throwRange(what + ".layout is too short");
  const double* d = a.Data();
  const int64_t code = layoutInt(d[0], what, "dtypeCode");
  if (code > static_cast<int64_t>(attn::DType::INT32)) attn::throwRange(what + " has an unknown dtype code");
  t.dtype = static_cast<attn::DType>(code);
  t.offset = layoutInt(d[1], what, "offset");
  const int64_t ndim = layoutInt(d[2], what, "ndim");
  if (ndim > 8) attn::throwRange(what + " has more than 8 dimensions");
  if (n != static_cast<size_t>(3 + 2 * ndim)) attn::throwRange(what + ".layout length disagrees with its ndim");
  t.shape.resize(static_cast<size_t>(ndim));
  t.strides.resize(static_cast<size_t>(ndim));
  for (int64_t i = 0; i < ndim; ++i) {
    t.shape[static_cast<size_t>(i)] = layoutInt(d[3 + i], what, "shape");
    t.strides[static_cast<size_t>(i)] = layoutInt(d[3 + ndim + i], what, "strides");
  }
  return true;
}

}  // namespace

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

bool TensorRef::contiguous() const {
  int64_t expect = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1 && strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

TensorRef tensorRef(Napi::Value value, const std::string& what) {
  if (!value.IsObject()) attn::throwType(what + " must be a Tensor");
  Napi::Object obj = value.As<Napi::Object>();
  TensorRef t;
  t.storage = StorageHandle::unwrap(obj.Get("storage"), what, ".storage");
  if (!readLayout(obj, what, t)) {
    int64_t code = intField(obj, "dtypeCode", what);
    if (code > static_cast<int64_t>(attn::DType::INT32)) attn::throwRange(what + " has an unknown dtype code");
    t.dtype = static_cast<attn::DType>(code);
    t.shape = intArray(obj, "shape", what);
    t.strides = intArray(obj, "strides", what);
    if (t.shape.size() != t.strides.size()) attn::throwRange(what + ": shape and strides differ in length");
    t.offset = intField(obj, "offset", what);
  }
  // Bounds: the furthest element must lie inside the storage.
  if (t.numel() > 0) {
    int64_t last = t.offset;
    for (size_t d = 0; d < t.shape.size(); ++d) last += (t.shape[d] - 1) * t.strides[d];
    int64_t capacity = static_cast<int64_t>(t.storage->bytes() / attn::dtypeSize(t.dtype));
    if (last >= capacity) attn::throwRange(what + " view exceeds its storage (element " + std::to_string(last) + " of " + std::to_string(capacity) + ")");
  }
  return t;
}

bool optionalTensorRef(Napi::Value value, const std::string& what, TensorRef* out) {
  if (value.IsNull() || value.IsUndefined()) return false;
  *out = tensorRef(value, what);
  return true;
}

attn::Device parseDevice(Napi::Value value, const char* what) {
  if (!value.IsString()) attn::throwType(std::string(what) + " must be a device string ('cpu' or 'cuda:N')");
  std::string s = value.As<Napi::String>().Utf8Value();
  if (s == "cpu") return attn::Device{};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9 && s.find_first_not_of("0123456789", 5) == std::string::npos)
    return attn::Device{attn::Device::Kind::Cuda, std::stoi(s.substr(5))};
  attn::throwRange(std::string(what) + " must be 'cpu' or 'cuda:N', got '" + s + "'");
}

}  // namespace binding
