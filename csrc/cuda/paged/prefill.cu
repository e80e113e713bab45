// Paged prefill on the flash forward kernel: which kernel a paged call runs on, the prefill's
// support check, and its FwdParams (the launches are in prefill_hd*.cu).
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../../common/error.h"
#include "../common/launch_args.h"
#include "paged_attention.h"
#include "paged_checks.h"
#include "prefill_internal.h"

namespace attn::cuda {
namespace {


// Query rows per sequence on average from which a prefill leaves the decode kernel. The decode
// kernel stages each 64-key K/V tile for 16 (row, head) pairs, so a prefill on it moves ~8x the
// L2 -> SM bytes per MMA of a full 128-row flash tile and is bound by L2 bandwidth well below the
// MMA rate. At 64 rows a flash tile is half full: still 4x fewer bytes per useful MMA, enough to
// win even where its grid (no split-KV: query tiles x heads x sequences CTAs) fills only part of
// the GPU, e.g. one sequence of 64 rows with 32 heads. Below that, the decode kernel's packed
// (row, head) pairs and split-KV win. ATTN_PAGED_PREFILL_MIN_ROWS overrides it for measurements
// (scripts/bench-gpu.js --only prefill times both kernels across the crossover).
constexpr int kDefaultPrefillMinRows = 64;

// The shapes the prefill kernel is instantiated for: the sm_80 forward's f16/bf16 x {64, 128, 256}
// over a 16-bit cache (32 and 96 are left to the decode kernel, which has none either).
bool prefillShape(const PagedAttnParams& p) {
  return (p.dtype == DType::F16 || p.dtype == DType::BF16) && !p.quantized() &&
         (p.head_dim == 64 || p.head_dim == 128 || p.head_dim == 256);
}

int maxRowsQ(const PagedAttnParams& p) { return p.cu_seqlens_q != nullptr ? p.max_seqlen_q : 1; }

}  // namespace

int pagedPrefillMinRows() {
  static const int rows = [] {
    const char* v = std::getenv("ATTN_PAGED_PREFILL_MIN_ROWS");
    if (v == nullptr || v[0] == '\0') return kDefaultPrefillMinRows;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    return (*end == '\0' && n >= 1 && n <= INT_MAX) ? static_cast<int>(n) : kDefaultPrefillMinRows;
  }();
  return rows;
}

PagedKernel pagedKernelFor(const PagedAttnParams& p, int num_sms) {
  if (p.block_row_ptr != nullptr) return PagedKernel::Prefill;  // the decode kernel has no masks
  if (p.cu_seqlens_q == nullptr || p.batch <= 0 || !prefillShape(p)) return PagedKernel::Decode;
  const bool many_rows = static_cast<int64_t>(p.total_q) >= static_cast<int64_t>(pagedPrefillMinRows()) * p.batch;
  // The prefill kernel does not split the keys: with few query tiles it leaves most SMs idle while
  // the decode kernel splits. Measured on the H100 (run 16, 16k context, 32 heads): at batch 1 the
  // decode kernel wins up to 128 rows (32 CTAs of the prefill kernel) and loses from 256 (64).
  const int64_t tiles = std::max<int64_t>(p.batch, (static_cast<int64_t>(p.total_q) + 127) / 128) * p.heads_q;
  return many_rows && tiles * 4 >= num_sms ? PagedKernel::Prefill : PagedKernel::Decode;
}

bool pagedPrefillSupported(const PagedAttnParams& p, std::string* why) {
  auto fail = [&](const std::string& msg) {
    if (why) *why = msg;
    return false;
  };
  if (p.quantized()) return fail("the prefill kernel (and so a block mask) needs a 16-bit cache, not a quantized one");
  const std::string problem = paged::pagedCommonProblem(p);
  if (!problem.empty()) return fail(problem);
  if (!p.seq_lens) return fail("the prefill kernel reads seq_lens from the device (host seq_lens are for the decode kernel)");
  if (p.cache_dtype != p.dtype && p.cache_dtype != DType::F32) return fail("the cache's dtype must equal q's");
  if (p.block_row_ptr != nullptr && p.block_col_idx == nullptr) return fail("a block mask needs block_col_idx");
  if (p.heads_q > 65535 || p.batch > 65535) return fail("the prefill kernel supports at most 65535 heads and sequences");
  // tileOfBlock numbers the CTAs in an int; 64 rows is the smallest query tile.
  if ((static_cast<int64_t>(maxRowsQ(p)) + 63) / 64 * p.heads_q * p.batch > INT_MAX) return fail("grid too large");
  if (why) why->clear();
  return true;
}

void pagedPrefill(const PagedAttnParams& p, int num_sms, cudaStream_t stream) {
  std::string why;
  if (!pagedPrefillSupported(p, &why)) throwRange("pagedAttention: " + why);
  if (p.batch == 0 || p.total_q == 0) return;

  flash::FwdParams f{};
  flash::setQueryFields(f, p);
  flash::setScoreAndMaskFields(f, p);
  f.k = p.k_pages;
  f.v = p.v_pages;
  f.seqlen_q = maxRowsQ(p);
  f.seqlen_k = p.max_seqlen_k;
  const int right = p.causal ? 0 : p.window_right;  // causal folds into window_right = 0
  f.window_right = right < 0 ? -1 : right;
  f.lpt_group = 1;
  f.seq_lens = p.seq_lens;
  setBlockTableArgs(f, p);
  f.page_stride = p.page_stride;
  f.page_head_stride = p.page_head_stride;

  switch (p.head_dim) {
    case 64: paged::launchPrefillHd64(p.dtype, f, maxRowsQ(p), p.heads_q, p.batch, num_sms, stream); break;
    case 128: paged::launchPrefillHd128(p.dtype, f, maxRowsQ(p), p.heads_q, p.batch, num_sms, stream); break;
    case 256: paged::launchPrefillHd256(p.dtype, f, maxRowsQ(p), p.heads_q, p.batch, num_sms, stream); break;
    default: throwRange("pagedAttention: unsupported head_dim");
  }
}

}  // namespace attn::cuda
