// The score pipeline and visibility rule of csrc/common/attention_params.h, shared by the CPU
// dense and paged kernels so both implement exactly one definition.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace attn::cpu {

struct ScoreRules {
  float scale = 1.0f;
  float softcap = 0.0f;
  int window_left = -1;
  int window_right = -1;

  // Visible keys of query i (offset = len_k - len_q) as a half-open range [lo, hi).
  void visibleRange(int64_t i, int64_t offset, int64_t len_k, int64_t* lo, int64_t* hi) const {
    int64_t a = 0, b = len_k;
    if (window_left >= 0) a = std::max<int64_t>(a, i + offset - window_left);
    if (window_right >= 0) b = std::min<int64_t>(b, i + offset + window_right + 1);
    *lo = a;
    *hi = std::max(a, b);
  }

  float score(float dot, float slope, int64_t i, int64_t offset, int64_t j) const {
    float s = dot * scale;
    if (softcap > 0.0f) s = softcap * std::tanh(s / softcap);
    if (slope != 0.0f) s -= slope * static_cast<float>(std::llabs(i + offset - j));
    return s;
  }
};

// Online softmax state of one query row: the running max and the sum of exp(score - max).
struct OnlineSoftmax {
  float max = -INFINITY;
  float sum = 0.0f;
  float lse() const { return sum > 0.0f ? max + std::log(sum) : -INFINITY; }
  // The row's accumulator o (n floats) divided by the sum: all zeros for a row that saw no key.
  void normalize(float* o, int n) const {
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int c = 0; c < n; ++c) o[c] *= inv;
  }
};

}  // namespace attn::cpu
