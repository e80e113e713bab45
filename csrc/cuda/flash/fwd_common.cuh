// What the dense forward kernels share, whatever their MMA instructions (sm_80 mma.sync in
// flash_kernel.cuh, sm_90a wgmma in ../hopper/): the kernel parameters, where a sequence lives,
// which key blocks a query tile visits, and the score pipeline on accumulator fragments.
//
// Score fragments are float s[kMT][kNT][4] in the mma.m16n8k16 accumulator layout: for lane l,
// g = l / 4, t = l % 4, s[mt][nt][0..1] = (row 16 mt + g, cols 8 nt + 2t, +1) and s[mt][nt][2..3] the
// same columns of row 16 mt + g + 8. A wgmma m64nN accumulator is exactly this per warp (kMT = 1).
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include <algorithm>

#include "../../common/attention_params.h"
#include "../check.h"
#include "../common/ptx.cuh"

namespace attn::cuda::flash {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// Kernel arguments: AttnParams with the per-call constants precomputed on the host.
struct FwdParams {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  float* lse;
  int64_t q_batch_stride, q_row_stride, q_head_stride;
  int64_t k_batch_stride, k_row_stride, k_head_stride;
  int64_t v_batch_stride, v_row_stride, v_head_stride;
  int64_t o_batch_stride, o_row_stride, o_head_stride;
  const int32_t* cu_seqlens_q;  // null: dense
  const int32_t* cu_seqlens_k;
  const float* alibi_slopes;    // null: no ALiBi
  int heads_q;
  int kv_group;  // heads_q / heads_kv
  int seqlen_q, seqlen_k, total_q;
  int window_left, window_right;  // < 0: unbounded
  // Scores are either raw q.k (plain path: softmax multiplier scale*log2e folded into the exp2
  // argument, as FA2) or, when `transform` is set, the final scores softcap/ALiBi included
  // (multiplier log2e). The plain path needs scale > 0 so that max(q.k) is max(score).
  bool transform;
  float pre_scale;     // transform path: q.k * pre_scale is the tanh argument (or the score)
  float softcap;       // > 0: on
  float softmax_mult;  // exp2 multiplier of the scores held in registers
  int lpt_group;       // (sequence, head) pairs per scheduling group, see tileOfBlock
  // Block-sparse mask (AttnParams::block_*), block_col_idx null = dense. See SparseCursor.
  const int32_t* block_row_ptr;
  const int32_t* block_col_idx;
  int block_mask_batch, block_mask_heads, block_mask_q_blocks, block_mask_nnz;
  // Paged K/V (flashFwdKernel<T, PagedKV>, csrc/cuda/paged/prefill.cu); unused by the contiguous
  // kernels. k / v are then the layer's K and V page planes (csrc/common/paged_params.h): key j of
  // sequence b is slot j & (2^page_shift - 1) of page block_table[row * block_table_stride +
  // (j >> page_shift)], row = block_table_rows ? block_table_rows[b] : b, and the sequence holds
  // seq_lens[b] keys. Its queries are rows [cu_seqlens_q[b], cu_seqlens_q[b + 1]) of q (null: row b
  // alone), its last tokens, so the bottom-right alignment is the dense one.
  const int32_t* seq_lens = nullptr;
  const int32_t* block_table = nullptr;
  const int32_t* block_table_rows = nullptr;
  int64_t block_table_stride = 0;
  int64_t page_stride = 0, page_head_stride = 0;
  int page_shift = 0;
};

// The score pipeline's fields (transform, pre_scale, softcap, softmax_mult) from the call's scale,
// softcap (<= 0: off) and whether ALiBi is on.
inline void setScoreFields(FwdParams& p, float scale, float softcap, bool alibi) {
  const bool capped = softcap > 0.0f;
  p.transform = capped || alibi || !(scale > 0.0f);
  p.softcap = capped ? softcap : 0.0f;
  p.pre_scale = capped ? scale / softcap : scale;
  p.softmax_mult = p.transform ? kLog2e : scale * kLog2e;
}

// The query and output fields, which AttnParams and PagedAttnParams (paged/prefill.cu) name alike.
template <typename Params>
inline void setQueryFields(FwdParams& p, const Params& a) {
  p.q = a.q;
  p.o = a.o;
  p.lse = a.lse;
  p.q_row_stride = a.q_row_stride;
  p.q_head_stride = a.q_head_stride;
  p.o_row_stride = a.o_row_stride;
  p.o_head_stride = a.o_head_stride;
  p.cu_seqlens_q = a.cu_seqlens_q;
  p.heads_q = a.heads_q;
  p.kv_group = a.heads_q / a.heads_kv;
  p.total_q = a.total_q;
}

// The score pipeline, ALiBi, left window and block-mask fields, named alike as above. The right
// window is each caller's: AttnParams has causal folded into it already, PagedAttnParams not.
template <typename Params>
inline void setScoreAndMaskFields(FwdParams& p, const Params& a) {
  p.alibi_slopes = a.alibi_slopes;
  p.window_left = a.window_left < 0 ? -1 : a.window_left;
  setScoreFields(p, a.scale, a.softcap, a.alibi_slopes != nullptr);
  p.block_row_ptr = a.block_row_ptr;
  p.block_col_idx = a.block_row_ptr != nullptr ? a.block_col_idx : nullptr;
  p.block_mask_batch = a.block_mask_batch;
  p.block_mask_heads = a.block_mask_heads;
  p.block_mask_q_blocks = a.block_mask_q_blocks;
  p.block_mask_nnz = a.block_mask_nnz;
}

inline FwdParams makeFwdParams(const AttnParams& a) {
  FwdParams p;
  p.k = a.k;
  p.v = a.v;
  p.q_batch_stride = a.q_batch_stride;
  p.k_batch_stride = a.k_batch_stride;
  p.k_row_stride = a.k_row_stride;
  p.k_head_stride = a.k_head_stride;
  p.v_batch_stride = a.v_batch_stride;
  p.v_row_stride = a.v_row_stride;
  p.v_head_stride = a.v_head_stride;
  p.o_batch_stride = a.o_batch_stride;
  p.cu_seqlens_k = a.cu_seqlens_k;
  p.seqlen_q = a.seqlen_q;
  p.seqlen_k = a.seqlen_k;
  p.window_right = a.window_right < 0 ? -1 : a.window_right;
  setQueryFields(p, a);
  setScoreAndMaskFields(p, a);
  p.lpt_group = 1;
  return p;
}

// Where sequence b lives: dense batches are uniform, varlen ones come from cu_seqlens.
struct SeqInfo {
  int q_start, k_start;  // first row of the sequence (varlen), 0 dense
  int len_q, len_k;
  bool varlen;
  // Element offset of row 0 of the sequence, from the batch stride (dense) or the row start.
  __device__ __forceinline__ int64_t rowOffset(int64_t batch_stride, int64_t row_stride, int b,
                                               bool keys = false) const {
    return varlen ? (keys ? k_start : q_start) * row_stride : b * batch_stride;
  }
};

__device__ __forceinline__ SeqInfo seqInfo(const FwdParams& p, int b) {
  SeqInfo s;
  s.varlen = p.cu_seqlens_q != nullptr;
  if (s.varlen) {
    s.q_start = p.cu_seqlens_q[b];
    s.k_start = p.cu_seqlens_k[b];
    s.len_q = p.cu_seqlens_q[b + 1] - s.q_start;
    s.len_k = p.cu_seqlens_k[b + 1] - s.k_start;
  } else {
    s.q_start = 0;
    s.k_start = 0;
    s.len_q = p.seqlen_q;
    s.len_k = p.seqlen_k;
  }
  return s;
}

// ---- per-block score processing (all on the S accumulator in registers) ------------------

// Softcap / ALiBi / non-positive scale: turns raw q.k into the final score. diag0 = i + offset of
// the thread's first row (row g of m-tile 0), col0 = key index of the thread's first column.
template <int kMT, int kNT>
__device__ __forceinline__ void transformScores(float (&s)[kMT][kNT][4], const FwdParams& p, int h, int diag0,
                                                int col0) {
  const float pre = p.pre_scale;
  if (p.softcap > 0.0f) {
    const float cap = p.softcap;
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = cap * tanhAccurate(s[mt][nt][e] * pre);
  } else {
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] *= pre;
  }
  if (p.alibi_slopes != nullptr) {
    const float slope = p.alibi_slopes[h];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int diag = diag0 + mt * 16 + (e >= 2 ? 8 : 0);
          const int j = col0 + nt * 8 + (e & 1);
          s[mt][nt][e] -= slope * static_cast<float>(abs(diag - j));
        }
  }
}

// Which (query block, head, sequence) this CTA computes. The grid is (query blocks, heads, batch)
// and CTAs are dispatched roughly in linear order, x fastest. The linear index is cut into groups
// of `group` (sequence, head) pairs; inside a group, query blocks go from last to first and the
// pairs of the group alternate fastest. With group == 1 this is plain head-major order (each
// head's K/V is streamed by all its query blocks at once, the best L2 reuse: used when every
// block has the same work). Under a causal / window_right mask the work grows with the query
// block, and the launcher picks a group of about two waves, so the longest CTAs start first
// (no long CTA left for the tail) while the CTAs in flight still share a few heads' K/V in L2.
__device__ __forceinline__ void tileOfBlock(int group, int& m_block, int& h, int& b) {
  const int num_m = gridDim.x;
  const int pairs = gridDim.y * gridDim.z;
  const int linear = blockIdx.x + num_m * (blockIdx.y + gridDim.y * blockIdx.z);
  const int g = linear / (group * num_m);
  const int first_pair = g * group;
  const int size = min(group, pairs - first_pair);
  const int in_group = linear - first_pair * num_m;
  m_block = num_m - 1 - in_group / size;
  const int pair = first_pair + in_group % size;
  h = pair % gridDim.y;
  b = pair / gridDim.y;
}

// ---- block-sparse iteration (AttnParams::block_*) ------------------------------------------
// A mask row lists 128-key blocks, ascending; each covers kSparseBlock / kBlockN kernel key blocks.
// The kernel walks its key blocks from the last to the first, so the cursor hands out the largest
// listed kernel block below n within [lo, hi), or -1 when none is left. e is the mask entry the
// cursor is in (moves down only), e_begin the row's first entry. Returned blocks strictly decrease
// for any list contents, so even a corrupted list can neither repeat a block nor loop forever.
// The entry the cursor moves to is loaded as soon as it moves, one call ahead of its use: the load
// latency then overlaps a key block of work instead of stalling the loop head of every block.
template <int kBlockN>
struct SparseCursor {
  static constexpr int kPer = kSparseBlock / kBlockN;
  const int32_t* cols;
  int e, e_begin;
  int c_e;  // cols[e] when e >= e_begin

  // The mask row of the query tile starting at row m0 (inside one 128-row mask block), its
  // offsets clamped into [0, nnz]; the cursor starts on the row's last entry.
  __device__ __forceinline__ void init(const FwdParams& p, int b, int h, int m0) {
    const int mb = p.block_mask_batch == 1 ? 0 : b;
    const int mh = p.block_mask_heads == 1 ? 0 : h;
    const int64_t r =
        (static_cast<int64_t>(mb) * p.block_mask_heads + mh) * (p.block_mask_q_blocks + 1) + m0 / kSparseBlock;
    cols = p.block_col_idx;
    e_begin = min(max(__ldg(p.block_row_ptr + r), 0), p.block_mask_nnz);
    e = min(max(__ldg(p.block_row_ptr + r + 1), e_begin), p.block_mask_nnz) - 1;
    c_e = e >= e_begin ? __ldg(cols + e) : 0;
  }
  __device__ __forceinline__ int below(int n, int lo, int hi) {
    static_assert(kSparseBlock % kBlockN == 0, "kernel key blocks must tile a mask block");
    int cand = n - 1;
    while (e >= e_begin) {
      const int c = c_e;
      const int first = max(c * kPer, lo);
      cand = min(cand, min(c * kPer + kPer - 1, hi - 1));
      const bool hit = cand >= first;
      if (!hit || cand == first) {  // nothing of entry e is left below cand: move on, load the next
        --e;
        c_e = e >= e_begin ? __ldg(cols + e) : 0;
      }
      if (hit) return cand;
    }
    return -1;
  }
};

// Scheduling group of tileOfBlock for a grid of num_m query blocks per (sequence, head) and `pairs`
// (sequence, head) pairs: 1 when every block has the same work (no right window), else about two
// waves of CTAs (ctas_per_sm on each of `sms` SMs).
inline int lptGroup(int window_right, int64_t pairs, int num_m, int ctas_per_sm, int sms) {
  if (window_right < 0) return 1;
  const int64_t two_waves = 2LL * sms * ctas_per_sm;
  return static_cast<int>(std::min<int64_t>(pairs, std::max<int64_t>(1, (two_waves + num_m - 1) / num_m)));
}

inline int lptGroup(const AttnParams& a, int num_m, int ctas_per_sm) {
  if (a.window_right < 0) return 1;
  int device = 0, sms = 0;
  ATTN_CUDA_CHECK(cudaGetDevice(&device));
  ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return lptGroup(a.window_right, static_cast<int64_t>(a.heads_q) * a.batch, num_m, ctas_per_sm, sms);
}

// Key blocks a query tile [m0, m0 + block_m) visits, and which of them need per-element masks.
struct KeyBlocks {
  int n_min, n_max;     // visit n_block in [n_min, n_max), from the last to the first; empty: no key
  int mask_right_from;  // blocks >= this reach past the keys' end or the first row's right window
  int mask_left_below;  // blocks < this start before the last row's left window
  int offset;           // len_k - len_q: query i's diagonal is key i + offset
};

// Rows are i in [m0, m_last]; query i sees keys [i + offset - window_left, i + offset +
// window_right] clipped to [0, len_k). 64-bit because the caller may pass "huge" windows.
// Blocks between the two mask thresholds are fully visible to every row of the tile. Params: any
// kernel argument struct with window_left / window_right (< 0: unbounded).
template <typename Params>
__device__ __forceinline__ KeyBlocks keyBlocks(const Params& p, int m0, int block_m, int block_n, int len_q,
                                               int len_k) {
  KeyBlocks kb;
  kb.offset = len_k - len_q;
  const int m_last = min(m0 + block_m, len_q) - 1;
  const int64_t diag_first = static_cast<int64_t>(m0) + kb.offset;
  const int64_t diag_last = static_cast<int64_t>(m_last) + kb.offset;
  const int64_t key_lo = p.window_left >= 0 ? max64(0, diag_first - p.window_left) : 0;
  const int64_t key_hi = p.window_right >= 0 ? min64(len_k, diag_last + p.window_right + 1) : len_k;
  kb.n_min = 0;
  kb.n_max = 0;
  if (key_lo < key_hi) {
    kb.n_min = static_cast<int>(key_lo / block_n);
    kb.n_max = static_cast<int>((key_hi + block_n - 1) / block_n);
  }
  const int64_t right = p.window_right >= 0 ? min64(len_k, max64(0, diag_first + p.window_right + 1)) : len_k;
  kb.mask_right_from = static_cast<int>(right / block_n);
  kb.mask_left_below = 0;
  if (p.window_left >= 0) {
    const int64_t left = max64(0, static_cast<int64_t>(m0 + block_m - 1) + kb.offset - p.window_left);
    kb.mask_left_below = static_cast<int>(min64(left, len_k) + block_n - 1) / block_n;
  }
  return kb;
}

// Sets the scores of keys a row may not see to -inf. row_diag = i + offset of the thread's first
// row, n0 = the block's first key, t = lane % 4.
template <int kMT, int kNT, typename Params>
__device__ __forceinline__ void maskScores(float (&s)[kMT][kNT][4], const Params& p, int row_diag, int n0, int t,
                                           int len_k) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int64_t diag = static_cast<int64_t>(row_diag) + mt * 16 + 8 * hh;
      const int lo = p.window_left >= 0 ? static_cast<int>(min64(len_k, max64(0, diag - p.window_left))) : 0;
      const int hi =
          p.window_right >= 0 ? static_cast<int>(min64(len_k, max64(0, diag + p.window_right + 1))) : len_k;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int j = n0 + nt * 8 + 2 * t + e;
          if (j < lo || j >= hi) s[mt][nt][2 * hh + e] = -INFINITY;
        }
    }
}

// Reduces v[0..N) with op as a balanced tree: a row's max and sum over a block are otherwise a
// chain of N dependent instructions on the path from S to P. (Recursive, so every index is a
// constant and the arrays stay in registers.) softmaxStep keeps its chains: with trees the bf16
// Hopper forward ran 1-3.5% slower (docs/perf.md run 41).
template <int N, typename Op>
__device__ __forceinline__ float treeReduce(const float (&v)[N], Op op) {
  if constexpr (N == 1) {
    return v[0];
  } else {
    constexpr int kHalf = (N + 1) / 2;
    float u[kHalf];
#pragma unroll
    for (int i = 0; i < N / 2; ++i) u[i] = op(v[i], v[i + kHalf]);
    if constexpr (N % 2 == 1) u[kHalf - 1] = v[kHalf - 1];
    return treeReduce(u, op);
  }
}
__device__ __forceinline__ float maxOp(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ float addOp(float a, float b) { return a + b; }

// Online softmax step: turns the block's scores into probabilities (in place) against the updated
// running max, rescales the running sum, and returns in corr the factor the output accumulator
// must be scaled by (applied separately, so a kernel can defer it while an MMA still writes O).
// A row whose max is still -inf (all its keys so far masked) uses 0 as the subtrahend: exp2(-inf)
// = 0 keeps its probabilities and its correction factor at 0 instead of computing -inf - -inf = NaN.
template <int kMT, int kNT>
__device__ __forceinline__ void softmaxStep(float (&s)[kMT][kNT][4], float (&row_max)[kMT][2],
                                            float (&row_sum)[kMT][2], float (&corr)[kMT][2], float mult) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float mx = row_max[mt][hh];
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * hh], s[mt][nt][2 * hh + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_scaled = (mx == -INFINITY ? 0.0f : mx) * mult;
      corr[mt][hh] = exp2Approx(row_max[mt][hh] * mult - m_scaled);
      row_max[mt][hh] = mx;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float pr = exp2Approx(fmaf(s[mt][nt][2 * hh + e], mult, -m_scaled));
          s[mt][nt][2 * hh + e] = pr;
          sum += pr;
        }
      row_sum[mt][hh] = fmaf(row_sum[mt][hh], corr[mt][hh], sum);
    }
}

template <int kMT, int kDT>
__device__ __forceinline__ void rescaleRows(float (&acc_o)[kMT][kDT][4], const float (&corr)[kMT][2]) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int dt = 0; dt < kDT; ++dt) {
      acc_o[mt][dt][0] *= corr[mt][0];
      acc_o[mt][dt][1] *= corr[mt][0];
      acc_o[mt][dt][2] *= corr[mt][1];
      acc_o[mt][dt][3] *= corr[mt][1];
    }
}

// Both at once, for kernels that rescale O right away.
template <int kMT, int kNT, int kDT>
__device__ __forceinline__ void onlineSoftmax(float (&s)[kMT][kNT][4], float (&row_max)[kMT][2],
                                              float (&row_sum)[kMT][2], float (&acc_o)[kMT][kDT][4], float mult) {
  float corr[kMT][2];
  softmaxStep<kMT, kNT>(s, row_max, row_sum, corr, mult);
  rescaleRows<kMT, kDT>(acc_o, corr);
}

// The probabilities of k16 step kk of the key block as the A fragment of the P V product: the
// accumulators of two adjacent n8 tiles are exactly the m16n8k16 A layout.
template <typename Elem, int kMT, int kNT>
__device__ __forceinline__ void packP(uint32_t (&pa)[4], const float (&s)[kMT][kNT][4], int mt, int kk) {
  pa[0] = ElemTraits<Elem>::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
  pa[1] = ElemTraits<Elem>::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
  pa[2] = ElemTraits<Elem>::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
  pa[3] = ElemTraits<Elem>::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
}

// End of the row: reduces the quad's partial sums and returns 1 / sum (0 for a row that saw no
// key: sum == 0 exactly when its max stayed -inf); *lse gets the row's log-sum-exp (-inf if empty).
__device__ __forceinline__ float finishRow(float row_max, float row_sum, float mult, float* lse) {
  float sum = row_sum;
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);
  sum += __shfl_xor_sync(0xffffffffu, sum, 2);
  const bool empty = !(sum > 0.0f);
  *lse = empty ? -INFINITY : (row_max * mult + __log2f(sum)) * kLn2;
  return empty ? 0.0f : 1.0f / sum;
}

// Where this tile's log-sum-exp row 0 goes (null when not requested).
__device__ __forceinline__ float* lseRow0(const FwdParams& p, const SeqInfo& seq, int b, int h, int m0) {
  if (p.lse == nullptr) return nullptr;
  return p.lse + m0 +
         (p.cu_seqlens_q != nullptr ? static_cast<int64_t>(h) * p.total_q + seq.q_start
                                    : (static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen_q);
}

}  // namespace attn::cuda::flash
