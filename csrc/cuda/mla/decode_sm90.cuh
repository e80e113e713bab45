// The Hopper (sm_90a) MLA decode / prefill kernel: bf16 or fp8 cache, M = 64 rows per CTA. Shape and
// shared-memory plan in decode_sm90.h; semantics (masks, softcap, lse, splits) as decode_kernel.cuh.
//
// The two consumers take the 32-key tiles in turn. Per own tile t, consumer w:
//   A. waits for S_t; scores S_t in log2 units, masks them, takes the rows' maxima;
//   B. takes m_{t-1}, alpha_{t-1} from the other consumer (named barrier M), and puts out m_t,
//      alpha_t at once (barrier M of its own): this is the only step on the chain from tile to
//      tile, so the two consumers' exps, P stores and matrix products overlap;
//   C. (the other's P_{t-1} out, barrier P) O *= alpha_{t-1}; issues P_{t-1} V_{t-1};
//   D. P_t = exp2(S_t - m_t) over the tile's rope chunk (which only S_t read); zeroes the V rows
//      past the split's end on its last tile (unwritten page slots may hold NaN: 0 * NaN would
//      poison O); puts out P_t (barrier P);
//   E. its P V_{t-1} done: releases stage t-1; O *= alpha_t (skipped where alpha is 1 for the whole
//      warp, which the lazy max makes the rule); issues P_t V_t; when that is done, releases stage
//      t (the producer refills it with t + 4) and issues S_{t+2} (its tile landed while t-1 and t
//      were read).
// Row sums: each consumer sums the rows of its own tiles, rescaled by every alpha; the epilogue
// adds the two.
// Fragment conventions are those of flash_fwd_sm90.cuh: accumulators per warp in the m16n8k16 C
// layout along N (rows 16 warp + g, + 8; columns 8 j + 2 t, + 1); tiles in TMA's 128-byte-swizzled
// 64-column chunks; P in the 64-byte swizzle (rows of 32 keys).
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../common/fp8_convert.cuh"
#include "../common/lazy_max.cuh"
#include "../common/ptx.cuh"
#include "../hopper/hopper_ptx.cuh"
#include "../hopper/wgmma_ops.cuh"
#include "cta_range.cuh"
#include "decode_sm90.h"
#include "row_output.cuh"

namespace attn::cuda::mla::sm90 {

struct KernelArgs {
  MlaArgs a;
  CUtensorMap kv;  // bf16: 3-D {576, kv rows, 1}, box {64, box_rows, 1}, 128-byte swizzle
  int box_rows;    // bf16: rows per TMA copy: min(page_size, 32), one page piece
  int oob_row;     // bf16: a row past the map's extent: TMA fills its box with zeros
};

// Byte offset of the 16-byte unit `unit` (0..7) of row r in a 128-byte-swizzled chunk (1024-byte
// aligned): TMA's CU_TENSOR_MAP_SWIZZLE_128B, address bits [4, 7) ^= bits [7, 10).
__device__ __forceinline__ uint32_t swz128(int r, int unit) { return static_cast<uint32_t>(r * 128 + ((unit ^ (r & 7)) << 4)); }

// Named barriers: kBarM0 + w: consumer w's m_t and alpha_t are out; kBarP0 + 2 w + (t / 2) % 2: its
// P_t is out (two ids, as w may publish P_{t+2} before the other consumer has waited for P_t).
// kBarSlots: (fp8) the producer warpgroup is done reading the e4m3 slots of a tile.
constexpr int kBarQ = 1, kBarEx = 2, kBarM0 = 3, kBarP0 = 5, kBarSlots = 9;

// Q chunks the consumers keep in registers for S with a bf16 cache (the last ones: the rope chunk,
// then latent), 32 registers: 128 heads at 4k ran 2.3% faster, 3 chunks no faster, 4 spill
// (H100, run 86). With an fp8 cache, whose tiles take their time in the producer, the consumers'
// S ran 1-2% slower so (run 86): it keeps all of Q in shared memory.
template <bool kFp8>
constexpr int kQRegChunks = kFp8 ? 0 : 2;
static_assert(kQRegChunks<false> < kChunks, "S keeps a chunk of Q in shared memory");

// Byte offset of the 16-byte unit `unit` (0..3) of row r in a 64-byte-swizzled K-major tile
// (CU_TENSOR_MAP_SWIZZLE_64B: address bits [4, 6) ^= bits [7, 9)).
__device__ __forceinline__ uint32_t swz64(int r, int unit) { return static_cast<uint32_t>(r * 64 + ((unit ^ ((r >> 1) & 3)) << 4)); }

// Two e4m3 (the low 16 bits of `two`) times the row's scale -> bf16x2: the fp8 cache's values,
// rounded once.
__device__ __forceinline__ uint32_t scaledBf16x2(uint32_t two, float scale) {
  const float2 f = e4m3x2ToFloat2(two);
  return ElemTraits<__nv_bfloat16>::pack(f.x * scale, f.y * scale);
}

// (fp8) The producer warpgroup. Thread 0 bulk-copies the 16-key e4m3 pieces of tile t + 2 (rows of
// one page, contiguous in the pool) and their scales into the slots of tile t once all 128 threads
// have written tile t into its stage as bf16. Pieces past the split's end are neither copied nor
// written: the consumers mask their keys' scores and zero their V rows, as for unwritten slots.
template <int kStages, typename BarFull, typename BarEmpty, typename StageOf>
__device__ __forceinline__ void produceFp8Tiles(const MlaArgs& a, const MlaCta& cta, uint32_t s_slots, uint32_t s_scales, uint32_t bar_slots,
                                                BarFull barFull, BarEmpty barEmpty, StageOf stageOf) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace hopper;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int32_t* bt = mlaPagesOf(a, cta.b);
  const int page_mask = (1 << a.page_shift) - 1;
  const auto* pages = static_cast<const uint8_t*>(a.pages);
  const auto live = [&](int it, int h) { return cta.kbeg + it * kTileKeys + h * kPieceKeys < cta.kend; };
  const auto slotBar = [&](int piece) { return bar_slots + 8 * (piece % kSlots8); };
  const auto issue = [&](int it) {
    for (int h = 0; h < 2; ++h) {
      if (!live(it, h)) continue;
      const int key = cta.kbeg + it * kTileKeys + h * kPieceKeys;
      const int piece = 2 * it + h;
      const int64_t row = (static_cast<int64_t>(__ldg(bt + (key >> a.page_shift))) << a.page_shift) + (key & page_mask);
      mbarArriveExpectTx(slotBar(piece), kPieceBytes + kPieceScaleBytes);
      bulkLoad(s_slots + (piece % kSlots8) * kPieceBytes, pages + row * kMlaRow, kPieceBytes, slotBar(piece));
      bulkLoad(s_scales + (piece % kSlots8) * kPieceScaleBytes, a.scales + row * 2, kPieceScaleBytes, slotBar(piece));
    }
  };
  if (tid == 0) {
    issue(0);
    if (cta.ntiles > 1) issue(1);
  }
  for (int it = 0; it < cta.ntiles; ++it) {
    if (it >= kStages) mbarWait(barEmpty(it % kStages), ((it / kStages) - 1) & 1);
    for (int h = 0; h < 2; ++h)
      if (live(it, h)) mbarWait(slotBar(2 * it + h), ((2 * it + h) / kSlots8) & 1);
    // 36 jobs (64-column chunk c, 8-row group), 9 per warp; lane -> row 8 group + lane / 4, 16
    // columns 64 c + 16 (lane % 4): the e4m3 reads and the swizzled bf16 writes each take the 4
    // wavefronts a warp's 512-byte access needs. Unrolled by 3: fully, the 40-register warpgroup
    // spills.
#pragma unroll 3
    for (int i = 0; i < 9; ++i) {
      const int j = warp + 4 * i;
      const int c = j >> 2, r = (j & 3) * 8 + (lane >> 2), quarter = lane & 3;
      const int h = r >> 4;  // uniform over the warp
      if (!live(it, h)) continue;
      const int slot = (2 * it + h) % kSlots8;
      const uint4 raw = ldShared128(s_slots + slot * kPieceBytes + (r & 15) * kMlaRow + (4 * c + quarter) * 16);
      const float sc = __uint_as_float(ldShared32(s_scales + slot * kPieceScaleBytes + (r & 15) * 8 + (c == kChunks - 1 ? 4 : 0)));
      const uint32_t dst = stageOf(it) + c * kChunkBytes;
      stShared128(dst + swz128(r, 2 * quarter),
                  make_uint4(scaledBf16x2(raw.x, sc), scaledBf16x2(raw.x >> 16, sc), scaledBf16x2(raw.y, sc), scaledBf16x2(raw.y >> 16, sc)));
      stShared128(dst + swz128(r, 2 * quarter + 1),
                  make_uint4(scaledBf16x2(raw.z, sc), scaledBf16x2(raw.z >> 16, sc), scaledBf16x2(raw.w, sc), scaledBf16x2(raw.w >> 16, sc)));
    }
    fenceProxyAsync();
    __syncwarp();
    if (lane == 0) mbarArrive(barFull(it % kStages));
    namedBarrierSync(kBarSlots, 128);  // every thread is done with tile it's slots
    if (tid == 0 && it + 2 < cta.ntiles) issue(it + 2);
  }
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

template <bool kFp8>
__global__ void __launch_bounds__(kThreads, 1) mlaDecodeSm90Kernel(const __grid_constant__ KernelArgs args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace hopper;
  using P = Plan<kFp8>;
  constexpr int kStages = P::kStages;
  using T = __nv_bfloat16;
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  const MlaArgs& a = args.a;

  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t raw_base = smemAddr(smem);
  const uint32_t base = (raw_base + 1023) & ~1023u;
  const uint32_t sQ = base;
  const uint32_t sKV = base + kOffKV;
  float* s_max = reinterpret_cast<float*>(smem + (base - raw_base) + P::kOffMax);      // [tile parity][64]
  float* s_alpha = reinterpret_cast<float*>(smem + (base - raw_base) + P::kOffAlpha);  // [tile parity][64]
  float* s_sum = reinterpret_cast<float*>(smem + (base - raw_base) + P::kOffSum);      // [consumer][64]
  const auto barFull = [&](int s) { return base + P::kOffBar + 8 * s; };
  const auto barEmpty = [&](int s) { return base + P::kOffBar + 8 * (kStages + s); };
  const auto barSlot = [&](int s) { return base + P::kOffBar + 8 * (2 * kStages + s); };  // fp8: e4m3 slot s landed
  const auto stageOf = [&](int it) { return sKV + (it % kStages) * kTileBytes; };

  if (a.num_splits > 1) launchDependents();

  const int tid = threadIdx.x;
  MlaCta cta;
  if (!mlaCtaOf<64, kTileKeys>(a, cta)) return;
  const int b = cta.b, split = cta.split, q0 = cta.q0, m0 = cta.m0, mrows = cta.mrows;
  const int kbeg = cta.kbeg, kend = cta.kend, ntiles = cta.ntiles;

  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbarInit(barFull(s), kFp8 ? 4 : 1);  // fp8: every producer warp, after its part of the tile
      mbarInit(barEmpty(s), 8);  // one arrival per consumer warp, after its P V of the tile
    }
    for (int s = 0; s < (kFp8 ? kSlots8 : 0); ++s) mbarInit(barSlot(s), 1);
    fenceBarrierInit();
  }
  __syncthreads();

  // Broadcast from lane 0 (as CUTLASS does) so the compiler knows it is warp-uniform: the tile loop
  // and the stage addresses then sit in uniform registers, where S's descriptors are built.
  const int wg = __shfl_sync(0xffffffffu, tid / 128, 0);
  if (wg == 0) {
    setMaxRegsDec<40>();
    if constexpr (kFp8) {
      if (ntiles > 0) produceFp8Tiles<kStages>(a, cta, base + P::kOffStage8, base + P::kOffScale8, barSlot(0), barFull, barEmpty, stageOf);
    } else if (tid == 0 && ntiles > 0) {
      // ---- one thread: tile t into stage t % 4 by TMA ----
      prefetchTensorMap(&args.kv);
      const int32_t* bt = mlaPagesOf(a, b);
      const int box_rows = args.box_rows;       // min(page size, 32)
      const int pieces = kTileKeys / box_rows;  // 1 or 2
      const int page_mask = (1 << a.page_shift) - 1;
      for (int it = 0; it < ntiles; ++it) {
        const int s = it % kStages;
        if (it >= kStages) mbarWait(barEmpty(s), ((it / kStages) - 1) & 1);
        int rows[2];
#pragma unroll
        for (int p = 0; p < 2; ++p) {
          const int key = kbeg + it * kTileKeys + p * box_rows;
          rows[p] = (p < pieces && key < kend) ? (__ldg(bt + (key >> a.page_shift)) << a.page_shift) + (key & page_mask) : args.oob_row;
        }
        const uint32_t dst = stageOf(it);
        mbarArriveExpectTx(barFull(s), kTileBytes);  // every piece counts its full box
        for (int c = 0; c < kChunks; ++c) {
#pragma unroll
          for (int p = 0; p < 2; ++p)
            if (p < pieces) tmaLoad3d(dst + c * kChunkBytes + p * box_rows * 128, &args.kv, barFull(s), c * 64, rows[p], 0);
        }
      }
    }
  } else {
    // ---- consumers ----
    setMaxRegsInc<232>();
    const int cw = wg - 1;  // O columns [256 cw, +256); S of tiles cw, cw + 2, ...
    const int ctid = tid - 128;
    const int wtid = ctid & 127;
    const int warp = wtid >> 5;
    const int lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;

    // Q -> shared in the 128-byte-swizzled chunk layout; rows past mrows are zero.
    {
      const T* q = static_cast<const T*>(a.q);
      for (int u = ctid; u < 64 * (kMlaRow / 8); u += 256) {
        const int r = u / (kMlaRow / 8), c16 = u % (kMlaRow / 8);
        const bool valid = r < mrows;
        const T* src = q;
        if (valid) {
          const int m = m0 + r, qi = m / a.heads, h = m - qi * a.heads;
          src = q + static_cast<int64_t>(q0 + qi) * a.q_row_stride + static_cast<int64_t>(h) * a.q_head_stride + c16 * 8;
        }
        cpAsync16(sQ + (c16 >> 3) * kQChunkBytes + swz128(r, c16 & 7), src, valid);
      }
      cpAsyncCommit();
      cpAsyncWait<0>();
      fenceProxyAsync();
    }

    int rloc[2], row_hi[2];
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      rloc[rr] = warp * 16 + g + rr * 8;
      row_hi[rr] = rloc[rr] < mrows ? min(cta.rowHi(a, rloc[rr]), kend) : 0;
    }
    float m_run[2] = {kNegInf, kNegInf};
    float l_run[2] = {0.0f, 0.0f};  // partial sums of this consumer's own tiles, rescaled by every alpha
    float o[128];
#pragma unroll
    for (int i = 0; i < 128; ++i) o[i] = 0.0f;
    float s[16];  // S (then P) of an own tile: n8 tile j = s[4 j .. 4 j + 3]

    namedBarrierSync(kBarQ, 256);

    // Q's last kQRegs chunks as wgmma A fragments in registers (the m16n8k16 A layout per
    // warp: rows 16 warp + g, + 8; columns 16 k + 2 t, + 8): their S steps read only K from shared
    // memory. An N = 32 step with both operands there is capped by shared memory at 2/3 of the
    // tensor rate (docs/perf.md run 67).
    constexpr int kQRegs = kQRegChunks<kFp8>;
    uint32_t qa[kQRegs > 0 ? kQRegs : 1][4][4];
#pragma unroll
    for (int c = 0; c < kQRegs; ++c)
#pragma unroll
      for (int k = 0; k < 4; ++k)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = warp * 16 + g + 8 * (e & 1);
          qa[c][k][e] = ldShared32(sQ + (kChunks - kQRegs + c) * kQChunkBytes + swz128(r, 2 * k + (e >> 1)) + 4 * t);
        }

    // S's 36 steps: the descriptors' high words are constants and their low words (start address
    // / 16, lbo) step by immediates, so each step costs an add, not a 64-bit add and two moves to
    // uniform registers as with descStep on an opaque descriptor.
    const auto issueS = [&](int it) {
      mbarWait(barFull(it % kStages), (it / kStages) & 1);
      const uint64_t kHi = smemDesc(0, 16, 1024) & 0xFFFFFFFF00000000ull;
      const uint32_t q_lo = static_cast<uint32_t>(smemDesc(sQ, 16, 1024));
      const uint32_t k_lo = static_cast<uint32_t>(smemDesc(stageOf(it), 16, 1024));
      wgmmaFence();
#pragma unroll
      for (int c = 0; c < kChunks - kQRegs; ++c)
#pragma unroll
        for (int k = 0; k < 4; ++k)
          wgmmaSS<T, 32>(s, kHi | (q_lo + ((c * kQChunkBytes + k * 32) >> 4)), kHi | (k_lo + ((c * kChunkBytes + k * 32) >> 4)),
                         (c | k) != 0 ? 1 : 0);
#pragma unroll
      for (int c = 0; c < kQRegs; ++c)
#pragma unroll
        for (int k = 0; k < 4; ++k)
          wgmmaRSK<T, 32>(s, qa[c][k], kHi | (k_lo + (((kChunks - kQRegs + c) * kChunkBytes + k * 32) >> 4)), 1);
      wgmmaCommit();
    };
    const auto issuePV = [&](int it) {
      const uint64_t dp = opaqueDesc(smemDescK<64>(stageOf(it) + 8 * kChunkBytes));  // P_it in the rope chunk
      const uint64_t dv = opaqueDesc(smemDesc(stageOf(it) + 4 * cw * kChunkBytes, kChunkBytes, 1024));
      fenceRegs(o);
      wgmmaFence();
#pragma unroll
      for (int kk = 0; kk < 2; ++kk) wgmmaSST<T, 256>(o, descStep(dp, kk * 32), descStep(dv, kk * 16 * 128), 1);
      wgmmaCommit();
    };
    const auto release = [&](int it) {
      __syncwarp();
      if (lane == 0) mbarArrive(barEmpty(it % kStages));
    };
    const auto rescale = [&](const float (&al)[2]) {
      if (__any_sync(0xffffffffu, al[0] != 1.0f || al[1] != 1.0f)) {
#pragma unroll
        for (int i = 0; i < 128; ++i) o[i] *= al[(i >> 1) & 1];
      }
    };
    // Own tile `it` (S done): scores in log2 units, keys at or past a row's end -> -inf (a select:
    // NaN scores of unwritten slots vanish too), and the rows' maxima. Softcap and masking branch
    // once per tile: a branch per score stalled the softmax on instruction fetch (ncu, run 67).
    const auto scoreTile = [&](int it, float (&mx)[2]) {
      const int ts = kbeg + it * kTileKeys;
      if (a.has_softcap) {
#pragma unroll
        for (int i = 0; i < 16; ++i) s[i] = a.softcap_log2 * tanhAccurate(s[i] * a.softcap_scale);
      } else {
        const float sl = a.scale_log2;
#pragma unroll
        for (int i = 0; i < 16; ++i) s[i] *= sl;
      }
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        if (ts + kTileKeys > row_hi[rr]) {
#pragma unroll
          for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e)
              if (ts + j * 8 + 2 * t + e >= row_hi[rr]) s[4 * j + 2 * rr + e] = kNegInf;
        }
        float m = kNegInf;
#pragma unroll
        for (int j = 0; j < 4; ++j) m = fmaxf(m, fmaxf(s[4 * j + 2 * rr], s[4 * j + 2 * rr + 1]));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
        mx[rr] = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
      }
    };
    // The other consumer's m_{it} and alpha_{it} (rescales the row sums; alpha returned for O).
    const auto takeMax = [&](int it, float (&al)[2]) {
      namedBarrierSync(kBarM0 + (1 - cw), 256);
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        m_run[rr] = s_max[(it & 1) * 64 + rloc[rr]];
        al[rr] = s_alpha[(it & 1) * 64 + rloc[rr]];
        l_run[rr] *= al[rr];
      }
    };
    // Own tile `it`: the running max through it (lazy, ../common/lazy_max.cuh: alpha is exactly 1
    // for almost every tile and O's rescale is skipped) out to the other consumer at once, the
    // only step on the chain from tile to tile. -inf - -inf is NaN: a row with no visible key yet
    // keeps -inf, and subtracts 0.
    const auto publishMax = [&](int it, const float (&mx)[2], float (&al)[2], float (&m_use)[2]) {
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const float m_new = mx[rr] - m_run[rr] > kMaxSlack ? fmaxf(m_run[rr], mx[rr]) : m_run[rr];
        m_use[rr] = m_new == kNegInf ? 0.0f : m_new;
        al[rr] = m_new == m_run[rr] ? 1.0f : exp2f(m_run[rr] - m_use[rr]);  // m_run == -inf -> 0
        m_run[rr] = m_new;
        if (t == 0) {
          s_max[(it & 1) * 64 + rloc[rr]] = m_new;
          s_alpha[(it & 1) * 64 + rloc[rr]] = al[rr];
        }
      }
      namedBarrierArrive(kBarM0 + cw, 256);
    };
    // Own tile `it`: P = exp2(S - m) (bf16, over the tile's rope chunk, which only S_it read), the
    // row sums, and on the split's last tile the V rows past kend -> 0 (unwritten page slots may
    // hold NaN, and 0 * NaN would poison O); then P_it is out.
    const auto expTile = [&](int it, const float (&al)[2], const float (&m_use)[2]) {
      const uint32_t sP = stageOf(it) + 8 * kChunkBytes;
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float p = exp2f(s[4 * j + 2 * rr + e] - m_use[rr]);
            s[4 * j + 2 * rr + e] = p;
            sum += p;
          }
        l_run[rr] = l_run[rr] * al[rr] + sum;
#pragma unroll
        for (int j = 0; j < 4; ++j)
          stShared32(sP + swz64(rloc[rr], j) + 4 * t, ElemTraits<T>::pack(s[4 * j + 2 * rr], s[4 * j + 2 * rr + 1]));
      }
      const int nvalid = kend - (kbeg + it * kTileKeys);
      if (nvalid < kTileKeys) {
        for (int u = wtid; u < (kTileKeys - nvalid) * 64; u += 128) {
          const int r = nvalid + (u >> 6), c = (u >> 3) & 7, unit = u & 7;
          stShared128(stageOf(it) + c * kChunkBytes + r * 128 + unit * 16, make_uint4(0u, 0u, 0u, 0u));
        }
      }
      fenceProxyAsync();
      namedBarrierArrive(kBarP0 + 2 * cw + ((it >> 1) & 1), 256);
    };
    // The other consumer's tile `it`: (its P out; own P V of it - 1 done) O *= alpha_it; P V.
    const auto otherPV = [&](int it, const float (&al)[2]) {
      namedBarrierSync(kBarP0 + 2 * (1 - cw) + ((it >> 1) & 1), 256);
      rescale(al);
      issuePV(it);
    };

    // Own tile `it`; on entry the pending group is S_it.
    const auto ownTile = [&](int it) {
      wgmmaWait<0>();
      fenceRegs(o);
      fenceRegs(s);
      float mx[2], al_prev[2] = {1.0f, 1.0f}, al[2], m_use[2];
      scoreTile(it, mx);
      if (it >= 1) takeMax(it - 1, al_prev);
      publishMax(it, mx, al, m_use);
      if (it >= 1) otherPV(it - 1, al_prev);  // runs during the exps
      expTile(it, al, m_use);
      wgmmaWait<0>();  // P V_{it-1}
      fenceRegs(o);
      if (it >= 1) release(it - 1);
      rescale(al);
      issuePV(it);
    };

    if (ntiles > 0) {
      fenceRegs(o);
      int it = cw;
      if (it < ntiles) issueS(it);
      // S_{it+2} is issued outside ownTile and the loop stops before the last own tile, so every
      // path into ownTile has the same wgmma groups pending (ptxas serializes the wgmmas otherwise).
      for (; it + 2 < ntiles; it += 2) {
        ownTile(it);
        // Tile it's stage goes back to the producer (to be refilled with it + 4) as soon as its
        // P V is done, not after S_{it+2} too.
        wgmmaWait<0>();
        fenceRegs(o);
        release(it);
        issueS(it + 2);
      }
      if (it < ntiles) ownTile(it);
      wgmmaWait<0>();
      fenceRegs(o);
      // it: this consumer's last own tile, or cw >= ntiles where it has none
      const int last_own = it < ntiles ? it : it - 2;
      if (last_own >= 0) release(last_own);
      if (last_own + 1 < ntiles) {  // the last tile is the other consumer's: its max (for the lse), P V
        float al[2];
        takeMax(last_own + 1, al);
        otherPV(last_own + 1, al);
        wgmmaWait<0>();
        fenceRegs(o);
        release(last_own + 1);
      }
    }

    // Epilogue: row sums of both consumers, then each writes its 256 columns (consumer 0 the lse).
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float l = l_run[rr];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      l_run[rr] = l;
      if (t == 0) s_sum[cw * 64 + rloc[rr]] = l;
    }
    namedBarrierSync(kBarEx, 256);
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int r = rloc[rr];
      if (r >= mrows) continue;
      const int m = m0 + r, qi = m / a.heads, h = m - qi * a.heads;
      storeMlaRow<T, 32>(a, split, q0 + qi, h, cw * 256 + 2 * t, l_run[rr] + s_sum[(1 - cw) * 64 + r], m_run[rr], cw == 0 && t == 0,
                         [&](int j, int e) { return o[4 * j + 2 * rr + e]; });
    }
  }
#else
  __trap();  // only the sm_90a image has a body; the host launches it only where that image loaded
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

}  // namespace attn::cuda::mla::sm90
