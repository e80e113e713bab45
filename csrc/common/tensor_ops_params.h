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

}  // namespace attn
