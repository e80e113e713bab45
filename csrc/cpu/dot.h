// The float32 dot product of the CPU kernels' Q·Kᵀ, and their SIMD multi-versioning.
#pragma once

// A hot loop compiled for AVX2 + FMA (x86-64-v3) and for the baseline, picked at load time
// (GCC function multi-versioning through an ifunc: x86-64 Linux only; elsewhere one version).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define ATTN_CPU_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ATTN_CPU_MULTIVERSION
#endif

namespace attn::cpu {

// Eight running partial sums: one running sum is a chain of n dependent adds that the compiler
// may not vectorize (it would reorder the sum); eight lanes fill one AVX2 or two SSE registers.
// (Sixteen or 32 lanes written as loops measured no faster.) The result differs from a
// sequential sum by float rounding only.
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
