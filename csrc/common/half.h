// Host-side conversions between float and the 16/8-bit formats, bit-exact with the
// device conversions (round to nearest even, NaN preserved, fp8 e4m3 saturating as cuda_fp8's
// __NV_SATFINITE). Used by the CPU backend and by Tensor.fromArray/toArray.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace attn {

inline uint32_t floatBits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float bitsFloat(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline uint16_t floatToBf16(float f) {
  uint32_t u = floatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}
inline float bf16ToFloat(uint16_t h) { return bitsFloat(static_cast<uint32_t>(h) << 16); }

inline uint16_t floatToF16(float f) {
  uint32_t x = floatBits(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (absx < 0x38800000u) {  // subnormal or zero in f16
    // value * 2^24 rounded to nearest even gives the subnormal mantissa
    float v = bitsFloat(absx) * 16777216.0f;
    float r = std::nearbyint(v);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(r));
  }
  uint32_t e = (absx >> 23) - 112u;  // rebias 127 -> 15
  uint32_t m = absx & 0x7fffffu;
  uint32_t h = (e << 10) | (m >> 13);
  uint32_t rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h += 1;
  return static_cast<uint16_t>(sign | h);
}
inline float f16ToFloat(uint16_t h) {
  uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  if (e == 0) {
    float v = std::ldexp(static_cast<float>(m), -24);
    return sign ? -v : v;
  }
  if (e == 31) return bitsFloat(sign | 0x7f800000u | (m << 13));
  return bitsFloat(sign | ((e + 112u) << 23) | (m << 13));
}

// fp8 e4m3 (OCP "fn": no infinities, max 448, NaN = 0x7f/0xff). Saturates finite overflow to +-448.
inline uint8_t floatToFp8e4m3(float f) {
  uint32_t x = floatBits(f);
  uint8_t sign = static_cast<uint8_t>((x >> 24) & 0x80u);
  float a = std::fabs(f);
  if (std::isnan(f)) return static_cast<uint8_t>(sign | 0x7f);
  if (a >= 464.0f) return static_cast<uint8_t>(sign | 0x7e);  // saturate to 448 (also inf)
  if (a < std::ldexp(1.0f, -6)) {  // subnormal: m * 2^-9
    float r = std::nearbyint(a * 512.0f);
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(r));  // r == 8 rolls into the first normal
  }
  int exp;
  float frac = std::frexp(a, &exp);  // a = frac * 2^exp, frac in [0.5, 1)
  int e = exp - 1 + 7;               // biased exponent
  float mant = std::nearbyint((frac * 2.0f - 1.0f) * 8.0f);
  if (mant >= 8.0f) { mant = 0.0f; e += 1; }
  if (e > 15 || (e == 15 && mant > 6.0f)) return static_cast<uint8_t>(sign | 0x7e);
  return static_cast<uint8_t>(sign | (e << 3) | static_cast<int>(mant));
}
inline float fp8e4m3ToFloat(uint8_t b) {
  float sign = (b & 0x80) ? -1.0f : 1.0f;
  int e = (b >> 3) & 0xf;
  int m = b & 0x7;
  if (e == 15 && m == 7) return std::nanf("");
  if (e == 0) return sign * std::ldexp(static_cast<float>(m), -9);
  return sign * std::ldexp(1.0f + m / 8.0f, e - 7);
}

}  // namespace attn
