// Element types shared by the CPU and CUDA backends and the binding.
// The numeric values are part of the JS<->native contract (lib/dtype.ts mirrors them).
#pragma once
#include <cstddef>
#include <cstdint>

namespace attn {

enum class DType : int32_t {
  F32 = 0,
  F16 = 1,
  BF16 = 2,
  FP8E4M3 = 3,
  INT8 = 4,
  INT32 = 5,
};

inline size_t dtypeSize(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::FP8E4M3: return 1;
    case DType::INT8: return 1;
    case DType::INT32: return 4;
  }
  return 0;
}

inline const char* dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::FP8E4M3: return "fp8e4m3";
    case DType::INT8: return "int8";
    case DType::INT32: return "int32";
  }
  return "?";
}

}  // namespace attn
