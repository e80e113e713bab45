// Loading/storing rows of any floating storage type as float32 (CPU kernels compute in float32).
#pragma once
#include <array>
#include <cstdint>

#include "../common/dtype.h"
#include "../common/half.h"

namespace attn::cpu {

// Every e4m3 byte decoded once: the 8-bit caches' dequantization reads this per element
// (fp8e4m3ToFloat per element made an fp8 paged decode ~12x slower than an int8 one).
inline const std::array<float, 256>& fp8Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[static_cast<size_t>(i)] = fp8e4m3ToFloat(static_cast<uint8_t>(i));
    return t;
  }();
  return table;
}

inline void loadRow(const void* base, int64_t offset, DType t, int n, float* out) {
  switch (t) {
    case DType::F32: {
      const float* p = static_cast<const float*>(base) + offset;
      for (int i = 0; i < n; ++i) out[i] = p[i];
      break;
    }
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
      for (int i = 0; i < n; ++i) out[i] = f16ToFloat(p[i]);
      break;
    }
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
      for (int i = 0; i < n; ++i) out[i] = bf16ToFloat(p[i]);
      break;
    }
    default: break;  // callers validate dtypes first
  }
}

inline void storeRow(void* base, int64_t offset, DType t, int n, const float* in) {
  switch (t) {
    case DType::F32: {
      float* p = static_cast<float*>(base) + offset;
      for (int i = 0; i < n; ++i) p[i] = in[i];
      break;
    }
    case DType::F16: {
      uint16_t* p = static_cast<uint16_t*>(base) + offset;
      for (int i = 0; i < n; ++i) p[i] = floatToF16(in[i]);
      break;
    }
    case DType::BF16: {
      uint16_t* p = static_cast<uint16_t*>(base) + offset;
      for (int i = 0; i < n; ++i) p[i] = floatToBf16(in[i]);
      break;
    }
    default: break;
  }
}

}  // namespace attn::cpu
