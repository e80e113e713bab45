// The online softmax's lazy running max (as FlashAttention-4): a row's running max moves only when
// a new tile's max exceeds it by more than kMaxSlack (log2 units). Probabilities and row sums then
// stay below 2^kMaxSlack times their exact values (far inside bf16/fp16/fp32 range), and the
// correction factor of O is exactly 1 for almost every tile, so O's rescale is skipped. The result
// is the same: O and the row sum share the stale max, and the lse adds it back.
// Used by the sm_90a MLA kernel (+2-5%, docs/perf.md run 67). The dense Hopper forward measured no
// gain in the same run (its per-warp vote cost what the skipped rescale saved), so it keeps the
// exact max.
#pragma once

namespace attn::cuda {
constexpr float kMaxSlack = 8.0f;
}  // namespace attn::cuda
