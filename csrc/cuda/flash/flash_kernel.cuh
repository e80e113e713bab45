// The FlashAttention-2 style forward kernel, templated on tile shape and element type only.
// Everything that varies per call (masking, window, softcap, ALiBi, GQA, varlen, scale, lse) is a
// runtime value, so the number of instantiations stays at dtype x head dim.
//
// One CTA computes kBlockM query rows of one (sequence, head). Warp w owns rows
// [w * 16 * kMTiles, (w + 1) * 16 * kMTiles) of the tile, as kMTiles m16 MMA tiles, and walks
// all visible key blocks (kBlockN keys each; with a block-sparse mask only the listed ones, see
// sparseBlockBelow) from the last to the first, keeping the output
// accumulator, running row max and running row sum in registers (online softmax).
//
// Register fragments follow mma.m16n8k16: for lane l, g = l / 4 and t = l % 4,
//   accumulator c[0..1] = (row g,     cols 2t, 2t+1), c[2..3] = (row g + 8, cols 2t, 2t+1);
//   A operand a[0] = (row g, k 2t..2t+1), a[1] = (row g+8, k 2t..), a[2] = (row g, k 2t+8..),
//   a[3] = (row g+8, k 2t+8..).
// So each thread holds two rows (g and g + 8) per m-tile, and the four lanes of a quad share them:
// row reductions are two xor-shuffles within the quad. The S accumulator of two adjacent n8 tiles
// is exactly the A fragment of P for the P V product (no shared-memory round trip for P).
//
// Pipeline per key block j (K double-buffered when kKStages == 2):
//   wait K_j; barrier; issue V_j and K_{j-1} (next block) loads;
//   S = Q K_j^T; transform/mask; online softmax     <- V_j and K_{j-1} in flight
//   wait V_j; barrier; O += P V_j                    <- K_{j-1} still in flight
// With kKStages == 1 (head dim 256, where a second K buffer would cost the second CTA per SM),
// K_{j-1} is issued after the second barrier instead and overlaps only P V_j, as in FA2.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../../common/attention_params.h"
#include "../check.h"
#include "../common/ptx.cuh"
#include "smem_layout.cuh"

namespace attn::cuda::flash {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kSmemAlign = 128;  // alignment of the tile bases in shared memory

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
  // Block-sparse mask (AttnParams::block_*), block_col_idx null = dense. See sparseBlockBelow.
  const int32_t* block_row_ptr;
  const int32_t* block_col_idx;
  int block_mask_batch, block_mask_heads, block_mask_q_blocks, block_mask_nnz;
};

inline FwdParams makeFwdParams(const AttnParams& a) {
  FwdParams p;
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.o = a.o;
  p.lse = a.lse;
  p.q_batch_stride = a.q_batch_stride;
  p.q_row_stride = a.q_row_stride;
  p.q_head_stride = a.q_head_stride;
  p.k_batch_stride = a.k_batch_stride;
  p.k_row_stride = a.k_row_stride;
  p.k_head_stride = a.k_head_stride;
  p.v_batch_stride = a.v_batch_stride;
  p.v_row_stride = a.v_row_stride;
  p.v_head_stride = a.v_head_stride;
  p.o_batch_stride = a.o_batch_stride;
  p.o_row_stride = a.o_row_stride;
  p.o_head_stride = a.o_head_stride;
  p.cu_seqlens_q = a.cu_seqlens_q;
  p.cu_seqlens_k = a.cu_seqlens_k;
  p.alibi_slopes = a.alibi_slopes;
  p.heads_q = a.heads_q;
  p.kv_group = a.heads_q / a.heads_kv;
  p.seqlen_q = a.seqlen_q;
  p.seqlen_k = a.seqlen_k;
  p.total_q = a.total_q;
  p.window_left = a.window_left < 0 ? -1 : a.window_left;
  p.window_right = a.window_right < 0 ? -1 : a.window_right;
  const bool softcap = a.softcap > 0.0f;
  p.transform = softcap || a.alibi_slopes != nullptr || !(a.scale > 0.0f);
  p.softcap = softcap ? a.softcap : 0.0f;
  p.pre_scale = softcap ? a.scale / a.softcap : a.scale;
  p.softmax_mult = p.transform ? kLog2e : a.scale * kLog2e;
  p.lpt_group = 1;
  p.block_row_ptr = a.block_row_ptr;
  p.block_col_idx = a.block_row_ptr != nullptr ? a.block_col_idx : nullptr;
  p.block_mask_batch = a.block_mask_batch;
  p.block_mask_heads = a.block_mask_heads;
  p.block_mask_q_blocks = a.block_mask_q_blocks;
  p.block_mask_nnz = a.block_mask_nnz;
  return p;
}

// ---- block-sparse iteration (AttnParams::block_*) ------------------------------------------
// A mask row lists 128-key blocks, ascending; each covers kSparseBlock / kBlockN kernel key blocks.
// The kernel walks its key blocks from the last to the first, so the cursor hands out the largest
// listed kernel block below n within [lo, hi), or -1 when none is left. e is the mask entry the
// cursor is in (moves down only), e_begin the row's first entry. Returned blocks strictly decrease
// for any list contents, so even a corrupted list can neither repeat a block nor loop forever.
template <int kBlockN>
__device__ __forceinline__ int sparseBlockBelow(const int32_t* cols, int& e, int e_begin, int n, int lo, int hi) {
  static_assert(kSparseBlock % kBlockN == 0, "kernel key blocks must tile a mask block");
  constexpr int kPer = kSparseBlock / kBlockN;
  int cand = n - 1;
  for (; e >= e_begin; --e) {
    const int c = __ldg(cols + e);
    const int first = max(c * kPer, lo);
    cand = min(cand, min(c * kPer + kPer - 1, hi - 1));
    if (cand >= first) return cand;
  }
  return -1;
}

template <typename Elem_, int kHeadDim_, int kBlockM_, int kBlockN_, int kWarps_, bool kQInRegs_, int kKStages_,
          int kMinBlocksPerSm_>
struct FwdTraits {
  using Elem = Elem_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kWarps = kWarps_;
  static constexpr int kThreads = kWarps * 32;
  static constexpr bool kQInRegs = kQInRegs_;  // else Q fragments are re-read from smem per block
  static constexpr int kKStages = kKStages_;
  static constexpr int kMinBlocksPerSm = kMinBlocksPerSm_;

  static constexpr int kMTiles = kBlockM / (16 * kWarps);  // m16 tiles per warp
  static constexpr int kNTiles = kBlockN / 8;              // n8 tiles of S per m-tile
  static constexpr int kDTiles = kHeadDim / 8;             // n8 tiles of O per m-tile
  static constexpr int kKSteps = kHeadDim / 16;            // k16 steps of Q K^T
  static constexpr int kPSteps = kBlockN / 16;             // k16 steps of P V
  static_assert(kBlockM % (16 * kWarps) == 0, "each warp owns whole m16 tiles");
  static_assert(kBlockN % 16 == 0 && kHeadDim % 32 == 0, "tile shape");
  static_assert(kKStages == 1 || kKStages == 2, "K stages");

  using TileQ = SwizzledTile<kBlockM, kHeadDim>;
  using TileKV = SwizzledTile<kBlockN, kHeadDim>;
  static constexpr int kSmemQ = TileQ::kBytes;  // reused for the O tile in the epilogue
  static constexpr int kSmemK = kKStages * TileKV::kBytes;
  static constexpr int kSmemV = TileKV::kBytes;
  static constexpr int kSmemBytes = kSmemQ + kSmemK + kSmemV + kSmemAlign;
};

// ---- global <-> shared tile copies ---------------------------------------------------------

// Byte offset between row r0 + dr and row r0 of the same chunk. dr is a compile-time multiple of
// the pass height; when that is a multiple of 8 rows the swizzle pattern repeats and this is an
// immediate, otherwise it falls back to recomputing the swizzle.
template <typename Tile>
__device__ __forceinline__ int passOffset(int r0, int c, int dr) {
  if (dr % 8 == 0) return dr * Tile::kRowBytes;
  return Tile::chunkOffset(r0 + dr, c) - Tile::chunkOffset(r0, c);
}

// Copies rows [0, kTileRows) of a tile whose row 0 is at g; rows >= rows_valid are zero-filled.
// rows_valid >= 1 always (only tiles that start inside the sequence are loaded), so g is valid.
// When the threads cover whole rows per pass, each thread keeps one column chunk and walks its
// source pointer down by a fixed step: this keeps the per-thread addressing state at one pointer
// (the compiler would otherwise hoist one 64-bit offset per pass out of the main loop).
template <typename Tile, int kThreads, typename Elem>
__device__ __forceinline__ void loadTile(uint32_t s, const Elem* g, int64_t row_stride, int rows_valid, int tid) {
  constexpr int kPerRow = Tile::kChunksPerRow;
  constexpr int kTotal = Tile::kTileRows * kPerRow;
  static_assert(kTotal % kThreads == 0, "tile copy must divide evenly over the threads");
  if constexpr (kThreads % kPerRow == 0) {
    constexpr int kRowsPerPass = kThreads / kPerRow;
    const int r0 = tid / kPerRow;
    const int c = tid % kPerRow;
    const int rows_left = rows_valid - r0;  // pass i is in range iff i * kRowsPerPass < rows_left
    // The source pointer is advanced in place and only onto rows that exist, so it always points
    // into the tensor (a zero-filled chunk still passes an address) while costing one 64-bit
    // register instead of one per pass.
    const Elem* src = g + min(r0, rows_valid - 1) * row_stride + c * 8;
    const int64_t step = kRowsPerPass * row_stride;
    const uint32_t dst = s + Tile::chunkOffset(r0, c);
#pragma unroll
    for (int i = 0; i < kTotal / kThreads; ++i) {
      if (i > 0 && i * kRowsPerPass < rows_left) src += step;
      cpAsync16(dst + passOffset<Tile>(r0, c, i * kRowsPerPass), src, i * kRowsPerPass < rows_left);
    }
  } else {
#pragma unroll
    for (int i = 0; i < kTotal / kThreads; ++i) {
      const int idx = tid + i * kThreads;
      const int r = idx / kPerRow;
      const int c = idx % kPerRow;
      const bool valid = r < rows_valid;
      cpAsync16(s + Tile::chunkOffset(r, c), valid ? g + r * row_stride + c * 8 : g, valid);
    }
  }
}

template <typename Tile, int kThreads, typename Elem>
__device__ __forceinline__ void storeTile(uint32_t s, Elem* g, int64_t row_stride, int rows_valid, int tid) {
  constexpr int kPerRow = Tile::kChunksPerRow;
  constexpr int kTotal = Tile::kTileRows * kPerRow;
  static_assert(kTotal % kThreads == 0, "tile copy must divide evenly over the threads");
#pragma unroll
  for (int i = 0; i < kTotal / kThreads; ++i) {
    const int idx = tid + i * kThreads;
    const int r = idx / kPerRow;
    const int c = idx % kPerRow;
    if (r < rows_valid) {
      const uint4 v = ldShared128(s + Tile::chunkOffset(r, c));
      *reinterpret_cast<uint4*>(g + r * row_stride + c * 8) = v;
    }
  }
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

// ---- the kernel ----------------------------------------------------------------------------

template <typename T>
__global__ void __launch_bounds__(T::kThreads, T::kMinBlocksPerSm) flashFwdKernel(const FwdParams p) {
  using Elem = typename T::Elem;
  using TileQ = typename T::TileQ;
  using TileKV = typename T::TileKV;
  constexpr int kBlockM = T::kBlockM;
  constexpr int kBlockN = T::kBlockN;
  constexpr int kMT = T::kMTiles;
  constexpr int kNT = T::kNTiles;
  constexpr int kDT = T::kDTiles;

  extern __shared__ __align__(128) unsigned char smem[];

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  int m_block, h, b;
  tileOfBlock(p.lpt_group, m_block, h, b);
  const int hk = h / p.kv_group;

  const SeqInfo seq = seqInfo(p, b);
  const int len_q = seq.len_q;
  const int len_k = seq.len_k;
  const int m0 = m_block * kBlockM;
  if (m0 >= len_q) return;  // varlen: this sequence is shorter than the longest one

  // Key blocks any row of this tile can see. Rows are i in [m0, m_last]; query i sees keys
  // [i + offset - window_left, i + offset + window_right] clipped to [0, len_k). 64-bit because
  // the caller may pass "huge" windows.
  const int offset = len_k - len_q;
  const int m_last = min(m0 + kBlockM, len_q) - 1;
  const int64_t diag_first = static_cast<int64_t>(m0) + offset;
  const int64_t diag_last = static_cast<int64_t>(m_last) + offset;
  const int64_t key_lo = p.window_left >= 0 ? max64(0, diag_first - p.window_left) : 0;
  const int64_t key_hi = p.window_right >= 0 ? min64(len_k, diag_last + p.window_right + 1) : len_k;
  int n_block_min = 0, n_block_max = 0;  // empty range: every row sees nothing
  if (key_lo < key_hi) {
    n_block_min = static_cast<int>(key_lo / kBlockN);
    n_block_max = static_cast<int>((key_hi + kBlockN - 1) / kBlockN);
  }
  const bool sparse = p.block_col_idx != nullptr;  // block-sparse mask: see the loops below

  // Element pointers to row 0 of this sequence and head.
  const Elem* qg = reinterpret_cast<const Elem*>(p.q) + seq.rowOffset(p.q_batch_stride, p.q_row_stride, b) +
                   h * p.q_head_stride;
  const Elem* kg = reinterpret_cast<const Elem*>(p.k) + seq.rowOffset(p.k_batch_stride, p.k_row_stride, b, true) +
                   hk * p.k_head_stride;
  const Elem* vg = reinterpret_cast<const Elem*>(p.v) + seq.rowOffset(p.v_batch_stride, p.v_row_stride, b, true) +
                   hk * p.v_head_stride;

  // Tile bases must be 128-byte aligned for the XOR addressing in SwizzledTile::subtileAddr; the
  // launch reserves kSmemAlign spare bytes so the base can be rounded up.
  const uint32_t sQ = (smemAddr(smem) + (kSmemAlign - 1)) & ~static_cast<uint32_t>(kSmemAlign - 1);
  const uint32_t sK = sQ + T::kSmemQ;
  const uint32_t sV = sK + T::kSmemK;

  // Prologue: Q tile and the first (= last in key order) K tile.
  loadTile<TileQ, T::kThreads>(sQ, qg + m0 * p.q_row_stride, p.q_row_stride, len_q - m0, tid);
  cpAsyncCommit();
  if (!sparse && n_block_max > n_block_min) {  // (block-sparse: the sparse loop loads its first K tile)
    const int n0 = (n_block_max - 1) * kBlockN;
    loadTile<TileKV, T::kThreads>(sK, kg + n0 * p.k_row_stride, p.k_row_stride, len_k - n0, tid);
  }
  cpAsyncCommit();

  const int warp_row0 = warp * 16 * kMT;
  // Per-lane ldmatrix bases; Q's includes this warp's first row (a multiple of 16).
  const uint32_t lQ = TileQ::laneBase(sQ + warp_row0 * TileQ::kRowBytes, laneRowA(lane), laneChunkA(lane));
  const uint32_t lK = TileKV::laneBase(sK, laneRowB(lane), laneChunkB(lane));
  const uint32_t lV = TileKV::laneBase(sV, laneRowA(lane), laneChunkA(lane));

  uint32_t q_frag[T::kQInRegs ? kMT : 1][T::kQInRegs ? T::kKSteps : 1][4];
  if constexpr (T::kQInRegs) {
    cpAsyncWait<1>();  // the Q group (the K group may still be in flight)
    __syncthreads();
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int ks = 0; ks < T::kKSteps; ++ks) ldmatrixX4(q_frag[mt][ks], TileQ::subtileAddr(lQ, mt * 16, 2 * ks));
  }

  float acc_o[kMT][kDT][4];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int dt = 0; dt < kDT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[mt][dt][e] = 0.0f;
  float row_max[kMT][2];  // in units of the scores held in registers; -inf: nothing seen yet
  float row_sum[kMT][2];  // this thread's partial sum; reduced over the quad at the end
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      row_max[mt][hh] = -INFINITY;
      row_sum[mt][hh] = 0.0f;
    }

  const int g = lane >> 2;
  const int t = lane & 3;
  const float mult = p.softmax_mult;
  // Per-element masking is needed only on blocks that straddle a boundary. Blocks with
  // n_block >= mask_right_from reach past the end of the keys or past the first row's
  // window_right diagonal; blocks with n_block < mask_left_below start before the last row's
  // window_left diagonal. Everything in between is fully visible to every row of the tile.
  int mask_right_from, mask_left_below = 0;
  {
    const int64_t right = p.window_right >= 0 ? min64(len_k, max64(0, diag_first + p.window_right + 1)) : len_k;
    mask_right_from = static_cast<int>(right / kBlockN);
    if (p.window_left >= 0) {
      const int64_t left = max64(0, static_cast<int64_t>(m0 + kBlockM - 1) + offset - p.window_left);
      mask_left_below = static_cast<int>(min64(left, len_k) + kBlockN - 1) / kBlockN;
    }
  }
  const int row_diag = m0 + warp_row0 + g + offset;  // i + offset of this thread's first row

  int stage = 0;
  // One key block: n_block now, n_next after it (< n_block_min: none). Inlined into the dense loop
  // and the block-sparse loop below, so the dense loop keeps no sparse state in registers.
  auto process_block = [&](const int n_block, const int n_next) __attribute__((always_inline)) {
    const int n0 = n_block * kBlockN;
    cpAsyncWait<0>();  // K_j
    __syncthreads();   // K_j visible to all; everyone is done with V_{j+1} and the other K stage

    loadTile<TileKV, T::kThreads>(sV, vg + n0 * p.v_row_stride, p.v_row_stride, len_k - n0, tid);
    cpAsyncCommit();
    if constexpr (T::kKStages == 2) {
      if (n_next >= n_block_min) {
        const int n0_next = n_next * kBlockN;
        loadTile<TileKV, T::kThreads>(sK + (stage ^ 1) * TileKV::kBytes, kg + n0_next * p.k_row_stride,
                                      p.k_row_stride, len_k - n0_next, tid);
      }
      cpAsyncCommit();  // possibly empty: keeps the wait counts below static
    }

    // S = Q K_j^T
    float s[kMT][kNT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.0f;
    const uint32_t lKj = lK + stage * TileKV::kBytes;
#pragma unroll
    for (int ks = 0; ks < T::kKSteps; ++ks) {
      uint32_t a[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        if constexpr (T::kQInRegs) {
#pragma unroll
          for (int e = 0; e < 4; ++e) a[mt][e] = q_frag[mt][ks][e];
        } else {
          ldmatrixX4(a[mt], TileQ::subtileAddr(lQ, mt * 16, 2 * ks));
        }
      }
#pragma unroll
      for (int np = 0; np < kNT / 2; ++np) {
        uint32_t bk[4];
        ldmatrixX4(bk, TileKV::subtileAddr(lKj, np * 16, 2 * ks));
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          mma16816<Elem>(s[mt][2 * np], a[mt], bk[0], bk[1]);
          mma16816<Elem>(s[mt][2 * np + 1], a[mt], bk[2], bk[3]);
        }
      }
    }

    if (p.transform) transformScores<kMT, kNT>(s, p, h, row_diag, n0 + 2 * t);

    // Per-element mask on the boundary blocks only.
    const bool need_mask = n_block >= mask_right_from || n_block < mask_left_below;
    if (need_mask) {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int64_t diag = static_cast<int64_t>(row_diag) + mt * 16 + 8 * hh;
          const int lo =
              p.window_left >= 0 ? static_cast<int>(min64(len_k, max64(0, diag - p.window_left))) : 0;
          const int hi = p.window_right >= 0
                             ? static_cast<int>(min64(len_k, max64(0, diag + p.window_right + 1)))
                             : len_k;
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int j = n0 + nt * 8 + 2 * t + e;
              if (j < lo || j >= hi) s[mt][nt][2 * hh + e] = -INFINITY;
            }
        }
    }

    // Online softmax. A row whose max is still -inf (all its keys so far masked) uses 0 as the
    // subtrahend: exp2(-inf) = 0 keeps its probabilities and its correction factor at 0 instead
    // of computing -inf - -inf = NaN. With two K stages it runs while V_j lands; with one, after
    // the barrier that lets K_{j-1} be issued, so that load overlaps the softmax too (as FA2).
    auto online_softmax = [&]() {
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
          const float corr = exp2Approx(row_max[mt][hh] * mult - m_scaled);
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
          row_sum[mt][hh] = fmaf(row_sum[mt][hh], corr, sum);
#pragma unroll
          for (int dt = 0; dt < kDT; ++dt) {
            acc_o[mt][dt][2 * hh] *= corr;
            acc_o[mt][dt][2 * hh + 1] *= corr;
          }
        }
    };
    if constexpr (T::kKStages == 2) online_softmax();

    if constexpr (T::kKStages == 2) {
      cpAsyncWait<1>();  // V_j (K_{j-1}, committed after it, may still be in flight)
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();  // V_j visible to all; with one K stage, also: everyone is done reading K_j
    if constexpr (T::kKStages == 1) {
      if (n_next >= n_block_min) {
        const int n0_next = n_next * kBlockN;
        loadTile<TileKV, T::kThreads>(sK, kg + n0_next * p.k_row_stride, p.k_row_stride, len_k - n0_next, tid);
      }
      cpAsyncCommit();
      online_softmax();
    }

    // O += P V_j. P (16-bit) is rebuilt from the S registers k16 step by k16 step.
#pragma unroll
    for (int kk = 0; kk < T::kPSteps; ++kk) {
      uint32_t pa[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        pa[mt][0] = ElemTraits<Elem>::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pa[mt][1] = ElemTraits<Elem>::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pa[mt][2] = ElemTraits<Elem>::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pa[mt][3] = ElemTraits<Elem>::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < kDT / 2; ++dp) {
        uint32_t bv[4];
        ldmatrixX4Trans(bv, TileKV::subtileAddr(lV, kk * 16, 2 * dp));
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          mma16816<Elem>(acc_o[mt][2 * dp], pa[mt], bv[0], bv[1]);
          mma16816<Elem>(acc_o[mt][2 * dp + 1], pa[mt], bv[2], bv[3]);
        }
      }
    }
    if constexpr (T::kKStages == 2) stage ^= 1;
  };
  if (!sparse) {
    for (int n_block = n_block_max - 1; n_block >= n_block_min; --n_block) process_block(n_block, n_block - 1);
  } else {
    // Block-sparse: this tile's mask row (a kBlockM tile lies inside one 128-row mask block), its
    // first listed key block, whose K tile the dense prologue would have loaded, then the rest.
    static_assert(kSparseBlock % kBlockM == 0, "query tiles must tile a mask block");
    const int mb = p.block_mask_batch == 1 ? 0 : b;
    const int mh = p.block_mask_heads == 1 ? 0 : h;
    const int64_t r = (static_cast<int64_t>(mb) * p.block_mask_heads + mh) * (p.block_mask_q_blocks + 1) + m0 / kSparseBlock;
    const int sp_begin = min(max(__ldg(p.block_row_ptr + r), 0), p.block_mask_nnz);
    int sp_e = min(max(__ldg(p.block_row_ptr + r + 1), sp_begin), p.block_mask_nnz) - 1;
    int n_block = sparseBlockBelow<kBlockN>(p.block_col_idx, sp_e, sp_begin, n_block_max, n_block_min, n_block_max);
    if (n_block >= n_block_min) {
      const int n0 = n_block * kBlockN;
      loadTile<TileKV, T::kThreads>(sK, kg + n0 * p.k_row_stride, p.k_row_stride, len_k - n0, tid);
    }
    cpAsyncCommit();
    while (n_block >= n_block_min) {
      const int n_next = sparseBlockBelow<kBlockN>(p.block_col_idx, sp_e, sp_begin, n_block, n_block_min, n_block_max);
      process_block(n_block, n_next);
      n_block = n_next;
    }
  }

  // Epilogue: normalize, lse, stage O through the Q buffer for 16-byte coalesced stores.
  // (Output offsets are recomputed here rather than kept live through the main loop.)
  cpAsyncWait<0>();
  __syncthreads();  // every warp is done with sQ/sK/sV
  const SeqInfo seq_o = seqInfo(p, b);
  float* lse_row0 = nullptr;  // lse of this tile's row 0
  if (p.lse != nullptr) {
    lse_row0 = p.lse + m0 +
               (p.cu_seqlens_q != nullptr ? static_cast<int64_t>(h) * p.total_q + seq_o.q_start
                                          : (static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen_q);
  }
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float sum = row_sum[mt][hh];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      // sum == 0 exactly when the row saw no key (its max stayed -inf): output 0, lse -inf.
      const bool empty = !(sum > 0.0f);
      const float inv = empty ? 0.0f : 1.0f / sum;
      const int r = warp_row0 + mt * 16 + g + 8 * hh;
      if (lse_row0 != nullptr && t == 0 && m0 + r < seq_o.len_q) {
        lse_row0[r] = empty ? -INFINITY : (row_max[mt][hh] * mult + __log2f(sum)) * kLn2;
      }
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        const uint32_t v = ElemTraits<Elem>::pack(acc_o[mt][dt][2 * hh] * inv, acc_o[mt][dt][2 * hh + 1] * inv);
        stShared32(sQ + TileQ::chunkOffset(r, dt) + 4 * t, v);
      }
    }
  __syncthreads();
  Elem* og = reinterpret_cast<Elem*>(p.o) + seq_o.rowOffset(p.o_batch_stride, p.o_row_stride, b) +
             h * p.o_head_stride;
  storeTile<TileQ, T::kThreads>(sQ, og + m0 * p.o_row_stride, p.o_row_stride, seq_o.len_q - m0, tid);
}

// ---- host launcher -------------------------------------------------------------------------

template <typename T>
void launchFlashFwd(const AttnParams& a, cudaStream_t stream) {
  FwdParams p = makeFwdParams(a);
  const int num_m = (a.seqlen_q + T::kBlockM - 1) / T::kBlockM;
  const dim3 grid(num_m, a.heads_q, a.batch);
  auto kernel = flashFwdKernel<T>;
  if (T::kSmemBytes > 48 * 1024) {
    ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
  }
  if (p.window_right >= 0) {  // work grows with the query block: longest first, see tileOfBlock
    int device = 0, sms = 0;
    ATTN_CUDA_CHECK(cudaGetDevice(&device));
    ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    const int64_t two_waves = 2LL * sms * T::kMinBlocksPerSm;
    const int64_t pairs = static_cast<int64_t>(a.heads_q) * a.batch;
    p.lpt_group = static_cast<int>(std::min<int64_t>(pairs, std::max<int64_t>(1, (two_waves + num_m - 1) / num_m)));
  }
  kernel<<<grid, T::kThreads, T::kSmemBytes, stream>>>(p);
  ATTN_CUDA_CHECK_LAUNCH();
}

// Launches Traits<__half> or Traits<__nv_bfloat16> by p.dtype (F16 or BF16, checked by
// flashForwardSupported): the one dtype switch every flash_fwd_hdim*.cu shares.
template <template <typename> class Traits>
void launchFlashFwdForDtype(const AttnParams& p, cudaStream_t stream) {
  if (p.dtype == DType::F16) {
    launchFlashFwd<Traits<__half>>(p, stream);
  } else {
    launchFlashFwd<Traits<__nv_bfloat16>>(p, stream);
  }
}

}  // namespace attn::cuda::flash
