// Element-wise tensor plumbing shared by both backends: strided copy (contiguous(), to()) and fill.
#pragma once
#include <cstdint>

namespace attn {

constexpr int kMaxDims = 8;

// Copies an n-d strided view element by element (same dtype). Strides in elements.
struct StridedCopyParams {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t src_strides[kMaxDims] = {};
  int64_t dst_strides[kMaxDims] = {};
  int elem_size = 0;  // 1, 2 or 4 bytes
  int64_t numel = 0;
  const void* src = nullptr;
  void* dst = nullptr;
};

// Sets numel contiguous elements of elem_size bytes to the bit pattern `bits`.
struct FillParams {
  void* dst = nullptr;
  int64_t numel = 0;
  int elem_size = 0;
  uint32_t bits = 0;
};

// Fills numel contiguous floating elements (f32/f16/bf16) with N(mean, std^2) samples from a
// counter-based generator: element i depends only on (seed, i), so any thread split gives the same
// values (CPU and CUDA agree up to the device's fast-math log/sin rounding).
struct RandomParams {
  void* dst = nullptr;
  int64_t numel = 0;
  int dtype = 0;  // attn::DType code
  uint64_t seed = 0;
  float mean = 0.0f;
  float std = 1.0f;
};

}  // namespace attn
