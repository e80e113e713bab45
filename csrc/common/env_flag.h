// Boolean tuning switches read from the environment (ATTN_CUDA_FORCE_SM80; the decode's in
// csrc/cuda/paged/decode_launch.cuh): for measurements and tests, never needed in normal use.
#pragma once
#include <cstdlib>

namespace attn {

// Unset or empty: `fallback`; "0...": false; any other value: true.
inline bool envFlag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || v[0] == '\0') return fallback;
  return v[0] != '0';
}

}  // namespace attn
