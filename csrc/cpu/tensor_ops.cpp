#include "tensor_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../common/counter_rng.h"
#include "element_io.h"
#include "parallel.h"

namespace attn::cpu {
namespace {

template <typename T>
void copyRange(const StridedCopyParams& p, int64_t begin, int64_t end) {
  const T* src = static_cast<const T*>(p.src);
  T* dst = static_cast<T*>(p.dst);
  for (int64_t i = begin; i < end; ++i) {
    int64_t rem = i, s = 0, d = 0;
    for (int k = p.ndim - 1; k >= 0; --k) {
      int64_t idx = rem % p.shape[k];
      rem /= p.shape[k];
      s += idx * p.src_strides[k];
      d += idx * p.dst_strides[k];
    }
    dst[d] = src[s];
  }
}

template <typename T>
void fillRange(const FillParams& p, int64_t begin, int64_t end) {
  T v;
  uint32_t bits = p.bits;
  std::memcpy(&v, &bits, sizeof(T));  // little-endian: the low bytes hold the pattern
  T* dst = static_cast<T*>(p.dst);
  for (int64_t i = begin; i < end; ++i) dst[i] = v;
}

}  // namespace

void copyStrided(const StridedCopyParams& p) {
  parallelFor(p.numel, 1 << 14, [&](int64_t b, int64_t e) {
    switch (p.elem_size) {
      case 1: copyRange<uint8_t>(p, b, e); break;
      case 2: copyRange<uint16_t>(p, b, e); break;
      default: copyRange<uint32_t>(p, b, e); break;
    }
  });
}

void fill(const FillParams& p) {
  parallelFor(p.numel, 1 << 16, [&](int64_t b, int64_t e) {
    switch (p.elem_size) {
      case 1: fillRange<uint8_t>(p, b, e); break;
      case 2: fillRange<uint16_t>(p, b, e); break;
      default: fillRange<uint32_t>(p, b, e); break;
    }
  });
}

void randomNormal(const RandomParams& p) {
  parallelFor(p.numel, 1 << 14, [&](int64_t b, int64_t e) {
    float buf[256];
    for (int64_t i = b; i < e; i += 256) {
      int n = static_cast<int>(std::min<int64_t>(256, e - i));
      for (int j = 0; j < n; ++j) buf[j] = p.mean + p.std * counterNormal(p.seed, i + j);
      storeRow(p.dst, i, static_cast<DType>(p.dtype), n, buf);
    }
  });
}

}  // namespace attn::cpu
