#include "host_codec.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/half.h"

namespace binding {
namespace {

template <typename Src>
void encodeFrom(const Src* src, int64_t n, attn::DType dtype, uint8_t* dst, const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    double v = static_cast<double>(src[i]);
    switch (dtype) {
      case attn::DType::F32: {
        float f = static_cast<float>(v);
        std::memcpy(dst + 4 * i, &f, 4);
        break;
      }
      case attn::DType::F16: {
        uint16_t h = attn::floatToF16(static_cast<float>(v));
        std::memcpy(dst + 2 * i, &h, 2);
        break;
      }
      case attn::DType::BF16: {
        uint16_t h = attn::floatToBf16(static_cast<float>(v));
        std::memcpy(dst + 2 * i, &h, 2);
        break;
      }
      case attn::DType::FP8E4M3: dst[i] = attn::floatToFp8e4m3(static_cast<float>(v)); break;
      case attn::DType::INT8:
      case attn::DType::INT32: {
        bool i8 = dtype == attn::DType::INT8;
        double lo = i8 ? -128.0 : -2147483648.0, hi = i8 ? 127.0 : 2147483647.0;
        if (!(v == std::floor(v)) || v < lo || v > hi)
          attn::throwRange(std::string(what) + "[" + std::to_string(i) + "] = " + std::to_string(v) + " is not a valid " +
                           attn::dtypeName(dtype) + " value");
        if (i8) {
          dst[i] = static_cast<uint8_t>(static_cast<int8_t>(v));
        } else {
          int32_t x = static_cast<int32_t>(v);
          std::memcpy(dst + 4 * i, &x, 4);
        }
        break;
      }
    }
  }
}

}  // namespace

std::vector<uint8_t> encode(Napi::Value data, attn::DType dtype, const char* what, int64_t* count) {
  size_t es = attn::dtypeSize(dtype);
  if (data.IsTypedArray()) {
    Napi::TypedArray ta = data.As<Napi::TypedArray>();
    int64_t n = static_cast<int64_t>(ta.ElementLength());
    std::vector<uint8_t> out(static_cast<size_t>(n) * es);
    const uint8_t* base = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    switch (ta.TypedArrayType()) {
      case napi_float32_array: encodeFrom(reinterpret_cast<const float*>(base), n, dtype, out.data(), what); break;
      case napi_float64_array: encodeFrom(reinterpret_cast<const double*>(base), n, dtype, out.data(), what); break;
      case napi_int32_array: encodeFrom(reinterpret_cast<const int32_t*>(base), n, dtype, out.data(), what); break;
      case napi_uint32_array: encodeFrom(reinterpret_cast<const uint32_t*>(base), n, dtype, out.data(), what); break;
      case napi_int16_array: encodeFrom(reinterpret_cast<const int16_t*>(base), n, dtype, out.data(), what); break;
      case napi_uint16_array: encodeFrom(reinterpret_cast<const uint16_t*>(base), n, dtype, out.data(), what); break;
      case napi_int8_array: encodeFrom(reinterpret_cast<const int8_t*>(base), n, dtype, out.data(), what); break;
      case napi_uint8_array:
      case napi_uint8_clamped_array: encodeFrom(base, n, dtype, out.data(), what); break;
      default: attn::throwType(std::string(what) + " must be a numeric typed array (not BigInt)");
    }
    *count = n;
    return out;
  }
  if (data.IsArray()) {
    Napi::Array a = data.As<Napi::Array>();
    int64_t n = a.Length();
    std::vector<double> tmp(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      Napi::Value e = a.Get(static_cast<uint32_t>(i));
      if (!e.IsNumber()) attn::throwType(std::string(what) + "[" + std::to_string(i) + "] must be a number");
      tmp[static_cast<size_t>(i)] = e.As<Napi::Number>().DoubleValue();
    }
    std::vector<uint8_t> out(static_cast<size_t>(n) * es);
    encodeFrom(tmp.data(), n, dtype, out.data(), what);
    *count = n;
    return out;
  }
  attn::throwType(std::string(what) + " must be a typed array or an array of numbers");
}

void decodeInPlace(std::vector<uint8_t>& bytes, attn::DType dtype) {
  if (dtype == attn::DType::F32 || dtype == attn::DType::INT8 || dtype == attn::DType::INT32) return;
  size_t es = attn::dtypeSize(dtype);
  size_t n = bytes.size() / es;
  std::vector<uint8_t> out(n * 4);
  for (size_t i = 0; i < n; ++i) {
    float f = 0.0f;
    if (dtype == attn::DType::FP8E4M3) {
      f = attn::fp8e4m3ToFloat(bytes[i]);
    } else {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      f = dtype == attn::DType::F16 ? attn::f16ToFloat(h) : attn::bf16ToFloat(h);
    }
    std::memcpy(out.data() + 4 * i, &f, 4);
  }
  bytes.swap(out);
}

Napi::Value toTypedArray(Napi::Env env, std::vector<uint8_t>&& bytes, attn::DType dtype) {
  size_t n = bytes.size();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, n);
  if (n) std::memcpy(buf.Data(), bytes.data(), n);
  switch (dtype) {
    case attn::DType::INT8: return Napi::Int8Array::New(env, n, buf, 0);
    case attn::DType::INT32: return Napi::Int32Array::New(env, n / 4, buf, 0);
    default: return Napi::Float32Array::New(env, n / 4, buf, 0);
  }
}

}  // namespace binding
