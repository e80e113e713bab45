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

#if defined(__GNUC__)
// Eight floats in one AVX register (GCC/Clang vector extension; loads and stores by memcpy, no
// alignment assumed), and their sum in dotF32's order.
typedef float V8 __attribute__((vector_size(32)));
inline float sum8(const V8& v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

// Four rows against one (four keys against a query, or a key against four queries) in one pass
// over q: four independent chains of adds instead of one, which is what bounds dotF32's speed;
// each chain is one register (the same loop written with arrays vectorized badly: slower than four
// dotF32 calls; the tails summed through arrays of pointers cost 15-20% of a decode chunk).
inline void dot4F32(const float* q, const float* k0, const float* k1, const float* k2, const float* k3, int n, float (&out)[4]) {
  V8 s0 = {}, s1 = {}, s2 = {}, s3 = {}, x, y;
  int c = 0;
  for (; c + 8 <= n; c += 8) {  // four named chains: as an array of four, 6% slower (head dim 120)
    __builtin_memcpy(&x, q + c, sizeof x);
    __builtin_memcpy(&y, k0 + c, sizeof y);
    s0 += x * y;
    __builtin_memcpy(&y, k1 + c, sizeof y);
    s1 += x * y;
    __builtin_memcpy(&y, k2 + c, sizeof y);
    s2 += x * y;
    __builtin_memcpy(&y, k3 + c, sizeof y);
    s3 += x * y;
  }
  float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f;  // tails (n % 8), each in order
  for (int i = c; i < n; ++i) t0 += q[i] * k0[i], t1 += q[i] * k1[i], t2 += q[i] * k2[i], t3 += q[i] * k3[i];
  out[0] = sum8(s0) + t0, out[1] = sum8(s1) + t1, out[2] = sum8(s2) + t2, out[3] = sum8(s3) + t3;
}
#else
inline void dot4F32(const float* q, const float* k0, const float* k1, const float* k2, const float* k3, int n, float (&out)[4]) {
  out[0] = dotF32(q, k0, n);
  out[1] = dotF32(q, k1, n);
  out[2] = dotF32(q, k2, n);
  out[3] = dotF32(q, k3, n);
}
#endif

}  // namespace attn::cpu
