// How many KV splits a split-KV launch runs with, and the workspace check that goes with it; shared
// by the paged decode (decode.cu) and MLA (../mla/mla.cu), whose partials both go to combine.cu.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "../../common/error.h"

namespace attn::cuda::paged {

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
