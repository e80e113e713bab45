// How many KV splits a split-KV launch runs with, and the workspace check that goes with it; shared
// by the paged decode (decode.cu) and MLA (../mla/mla.cu), whose partials both go to combine.cu.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "../../common/error.h"

namespace attn::cuda::paged {

// The most splits the backend picks for keys up to max_seqlen_k: max_auto, and none shorter than
// min_keys keys.
inline int maxSplitsByLength(int max_seqlen_k, int min_keys, int max_auto) {
  const int64_t max_by_len = (static_cast<int64_t>(std::max(max_seqlen_k, 0)) + min_keys - 1) / min_keys;
  return static_cast<int>(std::min<int64_t>(max_auto, max_by_len));
}

// The backend's split count for `units` CTAs per split on num_sms SMs, of which `slots` run at once.
// Fewer units than SMs: split until about one CTA per SM, which then runs the deep pipeline by
// itself (more, shorter splits only add per-CTA and combine cost). Otherwise the smallest count in
// [1, max_splits] whose wave efficiency (waves / ceil(waves), as in FlashAttention) is within
// `tolerance` of the best one's.
inline int waveBalancedSplits(int64_t units, int max_splits, int num_sms, int64_t slots, double tolerance) {
  if (units < num_sms) return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(max_splits, num_sms / units)));
  auto efficiency = [&](int s) {
    const double waves = static_cast<double>(units * s) / static_cast<double>(slots);
    return waves / std::ceil(waves);
  };
  double best = 0.0;
  for (int s = 1; s <= max_splits; ++s) best = std::max(best, efficiency(s));
  for (int s = 1; s <= max_splits; ++s)
    if (efficiency(s) >= tolerance * best) return s;
  return 1;
}

// requested > 1 needs a 16-byte aligned workspace of requested x per_split floats (else a RangeError
// naming `op`); requested <= 0 takes choose(), cut to what the given workspace holds (1: no split).
template <typename Choose>
int resolveSplits(const char* op, int requested, Choose choose, int64_t per_split, const float* workspace,
                  int64_t workspace_floats) {
  int splits = requested;
  if (splits <= 0) {
    // The backend picks; it uses no more splits than the given workspace holds.
    splits = choose();
    if (splits > 1) {
      const int64_t fit = workspace ? workspace_floats / per_split : 0;
      splits = static_cast<int>(std::min<int64_t>(splits, fit));
      if (splits < 2) splits = 1;
    }
  } else if (splits > 1) {
    const int64_t need = static_cast<int64_t>(splits) * per_split;
    if (!workspace || workspace_floats < need)
      throwRange(std::string(op) + ": num_splits = " + std::to_string(splits) + " needs a workspace of " +
                 std::to_string(need) + " floats, got " + std::to_string(workspace ? workspace_floats : 0));
  }
  if (splits > 1 && reinterpret_cast<uintptr_t>(workspace) % 16 != 0)
    throwRange(std::string(op) + ": the workspace must be 16-byte aligned");
  return splits;
}

}  // namespace attn::cuda::paged
