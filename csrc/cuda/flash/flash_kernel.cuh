// The FlashAttention-2 style forward kernel, templated on tile shape and element type only.
// Everything that varies per call (masking, window, softcap, ALiBi, GQA, varlen, scale, lse) is a
// runtime value, so the number of instantiations stays at dtype x head dim.
//
// One CTA computes kBlockM query rows of one (sequence, head). Warp w owns rows
// [w * 16 * kMTiles, (w + 1) * 16 * kMTiles) of the tile, as kMTiles m16 MMA tiles, and walks
// all visible key blocks (kBlockN keys each; with a block-sparse mask only the listed ones, see
// SparseCursor) from the last to the first, keeping the output
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
//
// Where K/V tiles come from is a compile-time policy (the kernel's second template argument):
// ContiguousKV reads k/v tensors through their strides (attention()); PagedKV reads a paged cache
// through its block table (pagedAttention() prefill, csrc/cuda/paged/prefill.cu). Everything else,
// block-sparse masks included, is the same code.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../../common/attention_params.h"
#include "../check.h"
#include "../common/ptx.cuh"
#include "fwd_common.cuh"
#include "smem_layout.cuh"

namespace attn::cuda::flash {

constexpr int kSmemAlign = 128;  // alignment of the tile bases in shared memory

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

// Copies key rows [n0, n0 + kTileRows) of one head of a paged cache into a tile; rows >= rows_valid
// (>= 1) are zero-filled. Key j lives in page bt[j >> shift] at slot j & (2^shift - 1); head0 is the
// head's slot 0 of page 0, so a row's address is head0 + page * page_stride + slot * head_dim. Each
// row has its own page (a 64/128-key tile spans several pages when pages are smaller), looked up
// once: a warp copies kWarpRows rows per pass, at most 32 rows over the passes, so each lane looks
// up one of them and the threads copying a row fetch its offset with a shuffle. That is one load
// per tile instead of a dependent load per pass, and the fewest registers at the main loop's
// loads (per-pass address math cost the d128 kernel more spills). A row past the end takes the last
// valid key's address, so no lookup leaves the sequence's table entries and a zero-filled chunk
// still passes a valid address.
template <typename Tile, int kThreads, typename Elem>
__device__ __forceinline__ void loadPagedTile(uint32_t s, const Elem* head0, const int32_t* bt, int64_t page_stride,
                                              int shift, int n0, int rows_valid, int tid) {
  constexpr int kPerRow = Tile::kChunksPerRow;
  constexpr int kTotal = Tile::kTileRows * kPerRow;
  static_assert(kThreads % kPerRow == 0 && kTotal % kThreads == 0, "paged tile copy: whole rows per pass");
  constexpr int kPasses = kTotal / kThreads;
  constexpr int kRowsPerPass = kThreads / kPerRow;
  constexpr int kRowElems = kPerRow * 8;
  constexpr int kWarpRows = 32 / kPerRow;  // rows one warp copies per pass
  const int r0 = tid / kPerRow;
  const int c = tid % kPerRow;
  const int slot_mask = (1 << shift) - 1;
  const Elem* col = head0 + c * 8;
  const uint32_t dst = s + Tile::chunkOffset(r0, c);
  auto rowOffset = [&](int r) {  // element offset of tile row r (clamped into the sequence) from head0
    const int j = n0 + min(r, rows_valid - 1);
    return static_cast<int64_t>(__ldg(bt + (j >> shift))) * page_stride + (j & slot_mask) * kRowElems;
  };
  if constexpr (32 % kPerRow == 0 && kWarpRows * kPasses <= 32) {
    // Lane l holds the offset of the warp's row l % kWarpRows of pass l / kWarpRows.
    const int lane = tid & 31;
    const int64_t lane_off =
        rowOffset((tid >> 5) * kWarpRows + lane % kWarpRows + kRowsPerPass * ((lane / kWarpRows) % kPasses));
#pragma unroll
    for (int i = 0; i < kPasses; ++i) {
      const int from = lane / kPerRow + kWarpRows * i;
      const uint32_t lo = __shfl_sync(0xffffffffu, static_cast<uint32_t>(lane_off), from);
      const int32_t hi = __shfl_sync(0xffffffffu, static_cast<int32_t>(lane_off >> 32), from);
      cpAsync16(dst + passOffset<Tile>(r0, c, i * kRowsPerPass), col + ((static_cast<int64_t>(hi) << 32) | lo),
                r0 + i * kRowsPerPass < rows_valid);
    }
  } else {  // (tile shapes of tuning builds where a warp's rows outnumber its lanes)
#pragma unroll
    for (int i = 0; i < kPasses; ++i) {
      const int r = r0 + i * kRowsPerPass;
      cpAsync16(dst + passOffset<Tile>(r0, c, i * kRowsPerPass), col + rowOffset(r), r < rows_valid);
    }
  }
}

// ---- K/V sources (the kernel's compile-time policy) -----------------------------------------
// Each policy gives a sequence's geometry (seq), the per-CTA state that locates its K/V (Source,
// built once per CTA) with the tile loads of key rows [n0, n0 + kTileRows), and where the lse rows
// of a query tile go.

// k / v tensors with batch, row and head strides (dense or varlen, cu_seqlens_k).
struct ContiguousKV {
  __device__ __forceinline__ static SeqInfo seq(const FwdParams& p, int b) { return seqInfo(p, b); }

  template <typename Elem>
  struct Source {
    const Elem* kg;  // row 0 of this sequence and kv head
    const Elem* vg;
    __device__ __forceinline__ Source(const FwdParams& p, const SeqInfo& s, int b, int hk)
        : kg(reinterpret_cast<const Elem*>(p.k) + s.rowOffset(p.k_batch_stride, p.k_row_stride, b, true) +
             hk * p.k_head_stride),
          vg(reinterpret_cast<const Elem*>(p.v) + s.rowOffset(p.v_batch_stride, p.v_row_stride, b, true) +
             hk * p.v_head_stride) {}
    template <typename Tile, int kThreads>
    __device__ __forceinline__ void loadK(const FwdParams& p, uint32_t s, int n0, int rows_valid, int tid) const {
      loadTile<Tile, kThreads>(s, kg + n0 * p.k_row_stride, p.k_row_stride, rows_valid, tid);
    }
    template <typename Tile, int kThreads>
    __device__ __forceinline__ void loadV(const FwdParams& p, uint32_t s, int n0, int rows_valid, int tid) const {
      loadTile<Tile, kThreads>(s, vg + n0 * p.v_row_stride, p.v_row_stride, rows_valid, tid);
    }
  };

  // lse layout of AttnParams: [batch, heads_q, seqlen_q] or [heads_q, total_q], rows contiguous.
  __device__ __forceinline__ static float* lseRow0(const FwdParams& p, const SeqInfo& s, int b, int h, int m0) {
    return flash::lseRow0(p, s, b, h, m0);
  }
  __device__ __forceinline__ static int lseRowStride(const FwdParams&) { return 1; }
};

// A paged KV cache (FwdParams' paged fields): q / o rows and lse as PagedAttnParams lays them out.
struct PagedKV {
  __device__ __forceinline__ static SeqInfo seq(const FwdParams& p, int b) {
    SeqInfo s;
    s.varlen = true;  // q / o rows start at q_start (rowOffset); keys never go through rowOffset
    s.q_start = p.cu_seqlens_q != nullptr ? p.cu_seqlens_q[b] : b;
    s.len_q = p.cu_seqlens_q != nullptr ? p.cu_seqlens_q[b + 1] - s.q_start : 1;
    s.k_start = 0;
    s.len_k = p.seq_lens[b];
    return s;
  }

  template <typename Elem>
  struct Source {
    const int32_t* bt;  // this sequence's block-table row
    const Elem* kh;     // slot 0 of page 0, this kv head
    const Elem* vh;
    __device__ __forceinline__ Source(const FwdParams& p, const SeqInfo&, int b, int hk)
        : bt(p.block_table + (p.block_table_rows != nullptr ? p.block_table_rows[b] : b) * p.block_table_stride),
          kh(reinterpret_cast<const Elem*>(p.k) + hk * p.page_head_stride),
          vh(reinterpret_cast<const Elem*>(p.v) + hk * p.page_head_stride) {}
    template <typename Tile, int kThreads>
    __device__ __forceinline__ void loadK(const FwdParams& p, uint32_t s, int n0, int rows_valid, int tid) const {
      loadPagedTile<Tile, kThreads>(s, kh, bt, p.page_stride, p.page_shift, n0, rows_valid, tid);
    }
    template <typename Tile, int kThreads>
    __device__ __forceinline__ void loadV(const FwdParams& p, uint32_t s, int n0, int rows_valid, int tid) const {
      loadPagedTile<Tile, kThreads>(s, vh, bt, p.page_stride, p.page_shift, n0, rows_valid, tid);
    }
  };

  // lse [total_q, heads_q]: the rows of one head are heads_q apart.
  __device__ __forceinline__ static float* lseRow0(const FwdParams& p, const SeqInfo& s, int, int h, int m0) {
    if (p.lse == nullptr) return nullptr;
    return p.lse + (static_cast<int64_t>(s.q_start) + m0) * p.heads_q + h;
  }
  __device__ __forceinline__ static int lseRowStride(const FwdParams& p) { return p.heads_q; }
};

// ---- the kernel ----------------------------------------------------------------------------

template <typename T, typename KV>
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

  const SeqInfo seq = KV::seq(p, b);
  const int len_q = seq.len_q;
  const int len_k = seq.len_k;
  const int m0 = m_block * kBlockM;
  if (m0 >= len_q) return;  // varlen: this sequence is shorter than the longest one

  const KeyBlocks kb = keyBlocks(p, m0, kBlockM, kBlockN, len_q, len_k);
  const int n_block_min = kb.n_min, n_block_max = kb.n_max;
  const bool sparse = p.block_col_idx != nullptr;  // block-sparse mask: see the loops below

  // Element pointer to row 0 of this sequence and head; kv locates its keys.
  const Elem* qg = reinterpret_cast<const Elem*>(p.q) + seq.rowOffset(p.q_batch_stride, p.q_row_stride, b) +
                   h * p.q_head_stride;
  const typename KV::template Source<Elem> kv(p, seq, b, hk);

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
    kv.template loadK<TileKV, T::kThreads>(p, sK, n0, len_k - n0, tid);
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
  const int row_diag = m0 + warp_row0 + g + kb.offset;  // i + offset of this thread's first row

  int stage = 0;
  // One key block: n_block now, n_next after it (< n_block_min: none). Inlined into the dense loop
  // and the block-sparse loop below, so the dense loop keeps no sparse state in registers.
  auto process_block = [&](const int n_block, const int n_next) __attribute__((always_inline)) {
    const int n0 = n_block * kBlockN;
    cpAsyncWait<0>();  // K_j
    __syncthreads();   // K_j visible to all; everyone is done with V_{j+1} and the other K stage

    kv.template loadV<TileKV, T::kThreads>(p, sV, n0, len_k - n0, tid);
    cpAsyncCommit();
    if constexpr (T::kKStages == 2) {
      if (n_next >= n_block_min) {
        const int n0_next = n_next * kBlockN;
        kv.template loadK<TileKV, T::kThreads>(p, sK + (stage ^ 1) * TileKV::kBytes, n0_next, len_k - n0_next, tid);
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
    if (n_block >= kb.mask_right_from || n_block < kb.mask_left_below) maskScores<kMT, kNT>(s, p, row_diag, n0, t, len_k);

    // With two K stages the softmax runs while V_j lands; with one, after the barrier that lets
    // K_{j-1} be issued, so that load overlaps the softmax too (as FA2).
    auto online_softmax = [&]() { onlineSoftmax<kMT, kNT, kDT>(s, row_max, row_sum, acc_o, mult); };
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
        kv.template loadK<TileKV, T::kThreads>(p, sK, n0_next, len_k - n0_next, tid);
      }
      cpAsyncCommit();
      online_softmax();
    }

    // O += P V_j. P (16-bit) is rebuilt from the S registers k16 step by k16 step.
#pragma unroll
    for (int kk = 0; kk < T::kPSteps; ++kk) {
      uint32_t pa[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) packP<Elem>(pa[mt], s, mt, kk);
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
    SparseCursor<kBlockN> cursor;
    cursor.init(p, b, h, m0);
    int n_block = cursor.below(n_block_max, n_block_min, n_block_max);
    if (n_block >= n_block_min) {
      const int n0 = n_block * kBlockN;
      kv.template loadK<TileKV, T::kThreads>(p, sK, n0, len_k - n0, tid);
    }
    cpAsyncCommit();
    while (n_block >= n_block_min) {
      const int n_next = cursor.below(n_block, n_block_min, n_block_max);
      process_block(n_block, n_next);
      n_block = n_next;
    }
  }

  // Epilogue: normalize, lse, stage O through the Q buffer for 16-byte coalesced stores.
  // (Output offsets are recomputed here rather than kept live through the main loop.)
  cpAsyncWait<0>();
  __syncthreads();  // every warp is done with sQ/sK/sV
  const SeqInfo seq_o = KV::seq(p, b);
  float* lse_row0 = KV::lseRow0(p, seq_o, b, h, m0);
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float lse;
      const float inv = finishRow(row_max[mt][hh], row_sum[mt][hh], mult, &lse);
      const int r = warp_row0 + mt * 16 + g + 8 * hh;
      if (lse_row0 != nullptr && t == 0 && m0 + r < seq_o.len_q) lse_row0[r * KV::lseRowStride(p)] = lse;
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

// Launches the (num_m query blocks, heads_q, batch) grid; p.lpt_group must be set.
template <typename T, typename KV>
void launchFwdGrid(const FwdParams& p, int num_m, int heads_q, int batch, cudaStream_t stream) {
  const dim3 grid(num_m, heads_q, batch);
  auto kernel = flashFwdKernel<T, KV>;
  if (T::kSmemBytes > 48 * 1024) {
    ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
  }
  kernel<<<grid, T::kThreads, T::kSmemBytes, stream>>>(p);
  ATTN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launchFlashFwd(const AttnParams& a, cudaStream_t stream) {
  FwdParams p = makeFwdParams(a);
  const int num_m = (a.seqlen_q + T::kBlockM - 1) / T::kBlockM;
  p.lpt_group = lptGroup(a, num_m, T::kMinBlocksPerSm);
  launchFwdGrid<T, ContiguousKV>(p, num_m, a.heads_q, a.batch, stream);
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
