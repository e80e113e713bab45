// A counter-based normal generator usable from host and device code (splitmix64 + Box-Muller).
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define ATTN_HD __host__ __device__ __forceinline__
#else
#define ATTN_HD inline
#endif

namespace attn {

ATTN_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Standard normal sample number i of stream `seed`.
ATTN_HD float counterNormal(uint64_t seed, int64_t i) {
  uint64_t pair = static_cast<uint64_t>(i) >> 1;
  uint64_t h = splitmix64(seed ^ splitmix64(pair));
  // Two 24-bit uniforms in (0, 1].
  float u1 = (static_cast<float>(h >> 40) + 1.0f) * (1.0f / 16777216.0f);
  float u2 = static_cast<float>((h >> 16) & 0xffffffULL) * (1.0f / 16777216.0f);
  float r = sqrtf(-2.0f * logf(u1));
  float a = 6.283185307179586f * u2;
  return (i & 1) ? r * sinf(a) : r * cosf(a);
}

}  // namespace attn
