// The paged attention kernel (decode and paged prefill), templated on element type and head_dim.
//
// One CTA = (sequence b, kv head, block of 16 (query row, head) pairs, split). The 16 rows are the
// flattened pairs m = qi * group + g of the sequence's query rows qi and the group's query heads g,
// so for decode (one row) a CTA carries every query head of its KV group and each K/V element is
// read from HBM once. The CTA's key range (the union of its rows' visible ranges, cut into
// num_splits tile-aligned chunks) streams through shared memory in tiles of 64 keys with a
// cp.async pipeline of a.stages stages (3-4 when CTAs share an SM, up to the whole shared memory
// when a CTA has its SM alone); page indices are looked up one tile ahead. Each of the 4 warps
// takes 16 keys of every tile: S = Q K^T and O += P V on mma.sync m16n8k16 with fp32 accumulators
// and its own online softmax (base 2, log2(e) folded into the scale); the warps' states are merged
// through shared memory at the end. num_splits == 1 writes o (and lse); otherwise the normalized
// partial output and its natural-log lse go to the workspace for combine.cu. A decode step whose
// KV group has at most 8 query heads runs the same pipeline with the keys on the MMA's M side
// instead (kKeysOnM, decode_keys_on_m.cuh): no padding rows in the MMAs.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "../check.h"
#include "../common/ptx.cuh"
#include "../common/stage_ring.cuh"
#include "paged_internal.h"
#include "decode_common.cuh"
#include "decode_keys_on_m.cuh"
#include "decode_launch.cuh"

namespace attn::cuda::paged {

template <int D>
struct DecodeCfg {
  static constexpr int kThreads = kDecodeThreads;
  static constexpr int kWarps = kDecodeWarps;
  static constexpr int kRows = kDecodeRows;
  static constexpr int kN = kDecodeTileKeys;             // keys per tile
  static constexpr int kStages = decodeStages(D);        // with several CTAs per SM
  static constexpr int kMaxStages = decodeMaxStages(D);  // with one CTA per SM
  static constexpr int kChunks = D / 8;                   // 16-byte chunks per row
  static constexpr int kLoadRows = kThreads / kChunks;    // K rows one pass of the CTA loads
  static constexpr int kKeysPerThread = kN / kLoadRows;   // K (and V) rows each thread loads per tile
  static constexpr int kTileBytes = kN * D * 2;           // one tile of K (or V)
  static constexpr int kQBytes = kRows * D * 2;
  static constexpr int kSmem = decodeSmemBytes(D, kStages);
  static constexpr int kMaxSmem = decodeSmemBytes(D, kMaxStages);
  static constexpr int kMinBlocks = decodeCtasPerSm(D);
  static constexpr int kCombineBatch = splitCombineBatch(kMinBlocks);
  static constexpr int kOStride = kDecodeOStride<D>;
  static_assert(kWarps * 16 == kN, "each warp takes 16 keys of a tile");
  static_assert(kThreads % kChunks == 0 && kN % kLoadRows == 0, "load mapping");
  static_assert(kSmem == kQBytes + kStages * 2 * kTileBytes, "smem layout");
  static_assert(kWarps * kRows * kOStride * 4 <= decodeSmemBytes(D, 2), "epilogue buffer fits 2 stages");
  static_assert(kMaxStages >= kStages && kMaxStages <= 9, "cpAsyncWaitDyn covers stages - 2 <= 7");
};

// kKeysOnM: the tile math of decode_keys_on_m.cuh (CTAs of at most 8 pairs), else pairs on M.
template <typename T, int D, bool kKeysOnM>
__global__ void __launch_bounds__(kDecodeThreads, DecodeCfg<D>::kMinBlocks) pagedDecodeKernel(const __grid_constant__ DecodeArgs a) {
  using Cfg = DecodeCfg<D>;
  constexpr int kN = Cfg::kN;
  const int stages = a.stages;  // >= 2
  constexpr int kLdChunks = Cfg::kChunks;
  constexpr int kLdRows = Cfg::kLoadRows;
  constexpr int kKPT = Cfg::kKeysPerThread;

  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ int s_pg[(Cfg::kMaxStages - 1) * kN];  // page of each key of the prologue tiles

  // Launched with programmatic stream serialization: the CTAs start while the previous kernel on
  // the stream finishes, and wait here, before any global read, until its writes are visible.
  waitForPrerequisites();
  launchDependents();

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  DecodeCta cta;
  if (!decodeCtaOf(a, cta)) return;  // uniform over the CTA
  const int kvh = cta.kvh, b = cta.b, q0 = cta.q0, m0 = cta.m0, mrows = cta.mrows;
  const int kbeg = cta.kbeg, kend = cta.kend, ntiles = cta.ntiles;

  // Shared memory: Q tile, then kStages x (K tile, V tile).
  constexpr int kStageTile = Cfg::kTileBytes;
  const uint32_t s_base = smemAddr(smem);
  const uint32_t s_q = s_base;
  auto sK = [&](int stage) { return s_base + Cfg::kQBytes + stage * 2 * kStageTile; };
  auto sV = [&](int stage) { return s_base + Cfg::kQBytes + stage * 2 * kStageTile + kStageTile; };

  // Q: rows m < mrows from global, the rest zero. Part of the first cp.async group.
  {
    const T* q = static_cast<const T*>(a.q);
    for (int u = tid; u < kDecodeRows * Cfg::kChunks; u += Cfg::kThreads) {
      const int r = u / Cfg::kChunks, c = u % Cfg::kChunks;
      const T* src = q;
      const bool valid = r < mrows;  // else 16 zero bytes
      if (valid) {
        const int m = m0 + r;
        const int qi = m / a.group, g = m - qi * a.group;
        src = q + static_cast<int64_t>(q0 + qi) * a.q_row_stride + static_cast<int64_t>(kvh * a.group + g) * a.q_head_stride +
              c * 8;
      }
      cpAsync16(s_q + swz<D>(r, c), src, valid);
    }
  }

  // K/V loads: thread handles chunk ld_chunk of rows ld_row0 + i * kLdRows of each tile.
  const int ld_chunk = tid % kLdChunks;
  const int ld_row0 = tid / kLdChunks;
  const T* kbase = static_cast<const T*>(a.k_pages) + static_cast<int64_t>(kvh) * a.page_head_stride + ld_chunk * 8;
  const T* vbase = static_cast<const T*>(a.v_pages) + static_cast<int64_t>(kvh) * a.page_head_stride + ld_chunk * 8;
  const int row = decodeTableRow(a, b);
  const int32_t* bt = a.block_table + static_cast<int64_t>(row) * a.block_table_stride;
  const int page_mask = (1 << a.page_shift) - 1;

  auto lookup = [&](int tile, int (&pg)[kKPT]) {
#pragma unroll
    for (int i = 0; i < kKPT; ++i) {
      const int key = kbeg + tile * kN + ld_row0 + i * kLdRows;
      pg[i] = key < kend ? __ldg(bt + (key >> a.page_shift)) : -1;
    }
  };
  auto issue = [&](int tile, int stage, const int (&pg)[kKPT]) {
    const uint32_t dk = sK(stage), dv = sV(stage);
#pragma unroll
    for (int i = 0; i < kKPT; ++i) {
      const int row = ld_row0 + i * kLdRows;
      const int key = kbeg + tile * kN + row;
      const bool ok = pg[i] >= 0;  // false past kend (or for a negative table entry): zero fill
      const int64_t off = ok ? static_cast<int64_t>(pg[i]) * a.page_stride + static_cast<int64_t>(key & page_mask) * D : 0;
      const uint32_t so = swz<D>(row, ld_chunk);
      cpAsync16(dk + so, kbase + off, ok);
      cpAsync16(dv + so, vbase + off, ok);
    }
  };

  // Prologue: the page of every key of the first stages-1 tiles (all loads in flight at once,
  // through shared memory), then those tiles' loads, one commit group per tile.
  int pg[kKPT];
  {
    const int keys = min(stages - 1, ntiles) * kN;
    for (int e = tid; e < keys; e += Cfg::kThreads) {
      const int key = kbeg + e;
      s_pg[e] = key < kend ? __ldg(bt + (key >> a.page_shift)) : -1;
    }
    __syncthreads();
    for (int st = 0; st < stages - 1; ++st) {
      if (st < ntiles) {
#pragma unroll
        for (int i = 0; i < kKPT; ++i) pg[i] = s_pg[st * kN + ld_row0 + i * kLdRows];
        issue(st, st, pg);
      }
      cpAsyncCommit();
    }
  }
  if (stages - 1 < ntiles) lookup(stages - 1, pg);

  // Top of tile it: wait until it is in shared memory (and every warp is done with tile it - 1),
  // then refill that stage with tile it + stages - 1 and look up the pages of the one after.
  auto nextTile = [&](int it, const StageRing& ring) {
    cpAsyncWaitDyn(stages - 2);
    __syncthreads();
    const int nt = it + stages - 1;
    if (nt < ntiles) issue(nt, ring.write, pg);
    cpAsyncCommit();
    if (nt + 1 < ntiles) lookup(nt + 1, pg);
  };

  if constexpr (kKeysOnM) {
    const DecodeRows rows = decodeRowsAt(a, cta, 2 * (lane & 3), 2 * (lane & 3) + 1);  // the lane's pairs
    DecodeStateKeysOnM<D> st;
    st.init();
    uint32_t qb[D / 16][2];
    StageRing ring(stages);
    for (int it = 0; it < ntiles; ++it) {
      nextTile(it, ring);
      if (it == 0) loadQKeysOnM<D>(qb, s_q, lane);  // Q came with tile 0
      const uint32_t sk = sK(ring.read), sv = sV(ring.read);
      ring.advance();
      decodeTileKeysOnM<T, D>(a, cta, rows, qb, sk, sv, kbeg + it * kN, st);
    }
    decodeEpilogueKeysOnM<T, D, Cfg::kCombineBatch>(a, cta, st, reinterpret_cast<float*>(smem));
  } else {
    // Per-thread rows of the mma fragments: g and g + 8.
    const int g = lane >> 2;
    const int t4 = lane & 3;
    const DecodeRows rows = decodeRowsOf(a, cta, g);

    float o_acc[D / 8][4], m_run[2], l_run[2];
    initRows<D / 8>(o_acc, m_run, l_run);

    // ldmatrix lane addressing (see the fragment layouts of mma.m16n8k16).
    const int q_lrow = (lane & 7) + ((lane >> 3) & 1) * 8, q_lchunk = lane >> 4;
    const int k_lrow = warp * 16 + (lane & 7) + (lane >> 4) * 8, k_lchunk = (lane >> 3) & 1;
    const int v_lrow = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, v_lchunk = lane >> 4;

    StageRing ring(stages);
    for (int it = 0; it < ntiles; ++it) {
      nextTile(it, ring);

      const uint32_t sk = sK(ring.read), sv = sV(ring.read);
      ring.advance();
      const int ts = kbeg + it * kN;

      // S = Q K^T for this warp's 16 keys.
      float s[2][4];
#pragma unroll
      for (int i = 0; i < 2; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks) {
        uint32_t qa[4], kb[4];
        ldmatrixX4(qa, s_q + swz<D>(q_lrow, 2 * ks + q_lchunk));
        ldmatrixX4(kb, sk + swz<D>(k_lrow, 2 * ks + k_lchunk));
        mma16816<T>(s[0], qa, kb[0], kb[1]);
        mma16816<T>(s[1], qa, kb[2], kb[3]);
      }

      decodeScores(a, cta, rows, s, ts, warp * 16, t4);
      decodeSoftmax<D / 8>(s, m_run, l_run, o_acc);

      // O += P V.
      uint32_t pa[4];
      pFragment<T>(pa, s);
#pragma unroll
      for (int np = 0; np < D / 16; ++np) {
        uint32_t vb[4];
        ldmatrixX4Trans(vb, sv + swz<D>(v_lrow, 2 * np + v_lchunk));
        mma16816<T>(o_acc[2 * np], pa, vb[0], vb[1]);
        mma16816<T>(o_acc[2 * np + 1], pa, vb[2], vb[3]);
      }
    }

    decodeEpilogue<T, D, Cfg::kCombineBatch>(a, cta, o_acc, m_run, l_run, reinterpret_cast<float*>(smem), [](int np, int n) { return 8 * np + n; }, nullptr);
  }
}

// A decode step (one query row per sequence) whose KV group has at most 8 query heads runs the
// keys-on-M tile math; everything else (larger groups, several query rows) the pairs-on-M one.
template <typename T, int D>
void launchPagedDecode(const DecodeArgs& a, cudaStream_t stream) {
  using Cfg = DecodeCfg<D>;
  const auto smem = [](int st) { return decodeSmemBytes(D, st); };
  if (a.cu_q == nullptr && a.mblocks == 1 && a.group <= kDecodePairsKeysOnM && decodeKeysOnMEnabled())
    launchDecodeGrid(pagedDecodeKernel<T, D, true>, a, Cfg::kStages, Cfg::kMaxStages, smem, stream);
  else
    launchDecodeGrid(pagedDecodeKernel<T, D, false>, a, Cfg::kStages, Cfg::kMaxStages, smem, stream);
}

}  // namespace attn::cuda::paged
