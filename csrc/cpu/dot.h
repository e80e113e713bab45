// The float32 dot product of the CPU kernels' Q·Kᵀ.
#pragma once

namespace attn::cpu {

// Eight running partial sums: one running sum is a chain of n dependent adds that the compiler may
// not vectorize (it would reorder the sum), eight let it use SIMD lanes and hide the add latency.
// The result differs from a sequential sum by float rounding only.
inline float dotF32(const float* a, const float* b, int n) {
  float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int c = 0;
  for (; c + 8 <= n; c += 8)
    for (int l = 0; l < 8; ++l) s[l] += a[c + l] * b[c + l];
  float tail = 0.0f;
  for (; c < n; ++c) tail += a[c] * b[c];
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail;
}

}  // namespace attn::cpu
