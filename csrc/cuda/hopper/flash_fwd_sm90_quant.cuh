// The Hopper (sm_90a) quantized forward: the kernel of csrc/cuda/quant (same preprocessing, same
// workspace, same rules: csrc/common/quant.h) on TMA + wgmma with warp specialization, laid out as
// the bf16 Hopper kernel (flash_fwd_sm90.cuh) whose pipeline it copies.
//
// A CTA computes kBlockM = 128 query rows of one (sequence, head) with three warpgroups:
//   warpgroup 0 (producer, registers cut to 24): one thread streams K8_j and V^T_j of every visited
//     key block into a kStages-deep ring (full / empty mbarriers per stage, K and V apart so S_j can
//     start before V_j lands);
//   warpgroups 1 and 2 (consumers, registers raised to 240): rows [64 w, 64 w + 64) each.
// Per key block of 64 (= kQuantKeyBlock: one K scale and one online-softmax step per block, the
// granularity the CPU emulation follows, so P is quantized against the same running max):
//   S = Q8 K8^T: wgmma m64n64k32, A = Q8 from registers (loaded once: 4 registers per k32 step, so
//     the only shared-memory operand is K), B = K8 K-major; s32 (exact) for int8, f32 for fp8;
//   x = float(S) * q_scale * k_scale * scale * log2(e), with kOutl plus the outlier channels' f16 dot
//   (csrc/common/quant.h; mma.sync m16n8k16 per warp, Q in registers, the block's K rows read from
//   L2 while its S is on the tensor cores) * qo_scale * ko_scale * scale * log2(e);
//   masks of fwd_common.cuh and an online softmax that takes the multiplier and the e4m3 P scale
//   inside its exp2 FMA (quantSoftmaxStep: three instructions fewer per score, docs/perf.md run 42);
//   P V: 8-bit P (e4m3(P * 448), packed straight from the S registers: the m64nNk32 A fragment of a
//     warp is the mma.m16n8k32 one, which quant_prep.cu's key permutation of V^T matches) times V^T
//     K-major (8-bit operands are K-major only: that is why V is stored transposed) into a zeroed f32
//     temporary, folded in as acc = acc * corr + tmp (two-level accumulation, as the sm_80 kernel:
//     the e4m3 MMA accumulates with fewer than 24 mantissa bits); 'int8': f16 P times f16 V^T
//     (K-major) straight into acc (f16 MMAs accumulate in full f32), after acc *= corr.
// Overlap as the bf16 kernel: S_{j+1} is issued with P_j V_j and its softmax runs while P_j V_j is on
// the tensor cores; the two consumers take turns issuing (named-barrier ping-pong).
// Tiles: K8 rows of D bytes (D = 128: 128-byte swizzle; D = 64: 64-byte swizzle), V^T rows of 64 keys
// (e4m3: 64 bytes, 64-byte swizzle; f16: 128 bytes, 128-byte swizzle), as TMA writes them.
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../../common/error.h"
#include "../../common/quant.h"
#include "../check.h"
#include "../common/ptx.cuh"
#include "../flash/fwd_common.cuh"
#include "../quant/quant_internal.h"
#include "../quant/quant_ptx.cuh"
#include "hopper_ptx.cuh"
#include "tensor_map.h"
#include "tile_store.cuh"
#include "wgmma_ops.cuh"

namespace attn::cuda::hopper {

template <int kHeadDim_, QuantMode kMode_, bool kOutl_>
struct QuantSm90Traits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr QuantMode kMode = kMode_;
  static constexpr bool kOutl = kOutl_;  // the outlier channels leave the 8-bit Q.K
  static constexpr int kBlockM = 128;              // two consumer warpgroups x 64 rows
  static constexpr int kBlockN = kQuantKeyBlock;   // 64
  static constexpr int kStages = 4;
  static constexpr int kConsumers = 2;
  static constexpr int kThreads = 128 * (kConsumers + 1);
  static constexpr bool kPvFp8 = quantPvFp8(kMode);  // e4m3 P and V (else f16)
  static constexpr bool kQkFp8 = quantQkFp8(kMode);  // e4m3 Q and K (else int8)
  static constexpr int kVElem = kPvFp8 ? 1 : 2;
  static constexpr int kKSwizzle = kHeadDim;          // bytes per K8 row
  static constexpr int kVSwizzle = kBlockN * kVElem;  // bytes per V^T row of one key block
  static constexpr int kNT = kBlockN / 8;             // n8 tiles of S per warp
  static constexpr int kDT = kHeadDim / 8;            // n8 tiles of O per warp
  static constexpr int kQSteps = kHeadDim / 32;       // k32 steps of Q K^T
  static constexpr int kPSteps = kPvFp8 ? kBlockN / 32 : kBlockN / 16;  // k steps of P V
  static constexpr int kKBytes = kBlockN * kHeadDim;
  static constexpr int kVBytes = kHeadDim * kBlockN * kVElem;
  static constexpr int kOBytes = kBlockM * kHeadDim * 2;  // 16-bit output staging
  static constexpr int kOffV = kStages * kKBytes;
  static constexpr int kOffO = kOffV + kStages * kVBytes;
  static constexpr int kOffBar = kOffO + kOBytes;
  static constexpr int kBars = 4 * kStages;  // full K, full V, empty K, empty V per stage
  static constexpr int kSmemBytes = kOffBar + 8 * kBars + 1024;  // + room to align the base to 1024
  static_assert(kHeadDim == 64 || kHeadDim == 128, "head dims 64 and 128");
  static_assert(kKSwizzle == 64 || kKSwizzle == 128, "K rows are one swizzle span");
  static_assert(kVSwizzle == 64 || kVSwizzle == 128, "V^T rows are one swizzle span");
  // Every tile base stays aligned to its swizzle atom (8 rows of the span).
  static_assert(kKBytes % 1024 == 0 && kVBytes % 1024 == 0 && kOBytes % 1024 == 0, "tile alignment");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory");
};

struct QuantSm90Args {
  quant::QuantArgs p;
  CUtensorMap k;  // k8: {D, total_kp, heads_kv} bytes, box {D, 64}
  CUtensorMap v;  // vt: {total_kp, D, heads_kv} e4m3 / f16, box {64, D}
};

// int32 -> float, exact for |x| < 2^22 (|Q8 . K8| <= 127 * 127 * 128 < 2^21) on the integer pipe
// instead of the quarter-rate conversion unit: the float 1.5 * 2^23 + x is exactly representable,
// its bits are those of 1.5 * 2^23 plus x. The score path keeps that offset value (kIntScoreZero
// is subtracted inside the exp2's FMA, quantSoftmaxStep); smallIntToFloat removes it.
constexpr float kIntScoreZero = 12582912.0f;  // 1.5 * 2^23
__device__ __forceinline__ float offsetIntToFloat(int32_t x) { return __int_as_float(x + 0x4B400000); }
__device__ __forceinline__ float smallIntToFloat(int32_t x) { return offsetIntToFloat(x) - kIntScoreZero; }

// A block's score multiplier (q_scale * k_scale * scale * log2(e)) is at least this, so that a
// masked score (-inf) times it stays -inf: a zero row or key block has scale 0 and scores 0, which
// any positive multiplier keeps at (about) 0.
constexpr float kMinScoreMult = 1e-30f;

// Online softmax step on raw block scores: score = (raw - zero) * mult[hh] in log2 units with
// mult > 0 (zero = kIntScoreZero when kIntRaw, the int8 S offset by the conversion, else 0), so the
// multiply rides in the exp2's FMA and the probabilities come out times 2^p_log2 (e4m3 P scale)
// for free. row_max is kept in score units, across blocks of different multipliers. Otherwise as
// flash::softmaxStep (a row with no visible key yet subtracts 0).
// kIntRaw subtracts the block's raw max first (exact: integers on one offset) so that the FMA's
// addend is a difference of scores: folding zero * mult into it would round it to ulp(zero * mult),
// a shift common to the block's probabilities that moves their e4m3 rounding (measured: 2.5e-3
// relative L2 from the CPU emulation on heavy-tailed inputs, against 2e-3 allowed).
template <int kNT, bool kIntRaw>
__device__ __forceinline__ void quantSoftmaxStep(float (&s)[1][kNT][4], const float (&mult)[2], float p_log2,
                                                 float (&row_max)[1][2], float (&row_sum)[1][2], float (&corr)[1][2]) {
  constexpr float zero = kIntRaw ? kIntScoreZero : 0.0f;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    float part[kNT];
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) part[nt] = fmaxf(s[0][nt][2 * hh], s[0][nt][2 * hh + 1]);
    float mx = flash::treeReduce(part, flash::maxOp);
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const bool none = mx == -INFINITY;  // every key of the block masked for this row
    const float m_blk = (mx - zero) * mult[hh];  // -inf stays -inf
    const float m_new = fmaxf(row_max[0][hh], m_blk);
    const float m_sub = m_new == -INFINITY ? 0.0f : m_new;
    corr[0][hh] = exp2Approx(row_max[0][hh] - m_sub);
    row_max[0][hh] = m_new;
    // exp2 argument: kIntRaw (raw - mx) * mult + (m_blk - m_sub + p_log2), else raw * mult + (p_log2 - m_sub).
    const float ref = kIntRaw && !none ? mx : 0.0f;
    const float add = (kIntRaw && !none ? m_blk - m_sub : -m_sub) + p_log2;
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float x = kIntRaw ? s[0][nt][2 * hh + e] - ref : s[0][nt][2 * hh + e];
        s[0][nt][2 * hh + e] = exp2Approx(fmaf(x, mult[hh], add));
      }
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) part[nt] = s[0][nt][2 * hh] + s[0][nt][2 * hh + 1];
    row_sum[0][hh] = fmaf(row_sum[0][hh], corr[0][hh], flash::treeReduce(part, flash::addOp));
  }
}

template <typename T>
__global__ void __launch_bounds__(T::kThreads, 1) quantFwdSm90Kernel(const __grid_constant__ QuantSm90Args args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace flash;
  constexpr int D = T::kHeadDim;
  constexpr int kBlockM = T::kBlockM;
  constexpr int kBlockN = T::kBlockN;
  constexpr int kStages = T::kStages;
  constexpr int kNT = T::kNT;
  constexpr int kDT = T::kDT;
  constexpr bool kQkFp8 = T::kQkFp8;
  constexpr bool kPvFp8 = T::kPvFp8;
  // P comes out of the softmax times kQuantPScaleFp8 (e4m3) or 1 (f16), and so does the row sum.
  constexpr float kPLog2 = kPvFp8 ? 8.8073549220576041f : 0.0f;  // log2(448)
  static_assert(!kPvFp8 || kQuantPScaleFp8 == 448.0f, "kPLog2 is log2(kQuantPScaleFp8)");
  // The block multiplier rides in the softmax's exp2 FMA (quantSoftmaxStep) except with the outlier
  // channels, whose f16 dot has a multiplier of its own, and for d64 int8-fp8, which ptxas schedules
  // 9% slower that way (docs/perf.md run 41): there the scores are scaled first.
  constexpr bool kPreScale = T::kOutl || (D == 64 && T::kMode == QuantMode::Int8Fp8);
  constexpr bool kIntRaw = !kQkFp8 && !kPreScale;  // scores stay int8 S offset by kIntScoreZero
  const quant::QuantArgs& p = args.p;

  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t sK = (smemAddr(smem) + 1023) & ~1023u;  // swizzle atoms need 1024-byte alignment
  const uint32_t sV = sK + T::kOffV;
  const uint32_t sO = sK + T::kOffO;
  const uint32_t bar0 = sK + T::kOffBar;
  const KvRing<kStages> ring{bar0};
  const auto barFullK = [&](int s) { return ring.fullK(s); };
  const auto barFullV = [&](int s) { return ring.fullV(s); };
  const auto barEmptyK = [&](int s) { return ring.emptyK(s); };
  const auto barEmptyV = [&](int s) { return ring.emptyV(s); };

  const int tid = threadIdx.x;
  int m_block, h, b;
  tileOfBlock(p.lpt_group, m_block, h, b);
  const int hk = h / p.group;
  const int q0 = __ldg(p.q_start + b);
  const int len_q = __ldg(p.q_start + b + 1) - q0;
  const int len_k = __ldg(p.k_start + b + 1) - __ldg(p.k_start + b);
  const int kp0 = __ldg(p.kp_start + b);
  const int m0 = m_block * kBlockM;
  if (m0 >= len_q) return;  // varlen: this sequence is shorter than the longest one (whole CTA)
  const KeyBlocks kb = keyBlocks(p, m0, kBlockM, kBlockN, len_q, len_k);

  if (tid == 0) {
    ring.init(T::kConsumers * 4);
    fenceBarrierInit();
  }
  __syncthreads();

  const int wg = tid / 128;
  if (wg == 0) {
    // ---- producer ----
    setMaxRegsDec<24>();
    if (tid == 0) {
      prefetchTensorMap(&args.k);
      prefetchTensorMap(&args.v);
      int it = 0;
      for (int n_block = kb.n_max - 1; n_block >= kb.n_min; --n_block, ++it) {
        const int s = it % kStages;
        const uint32_t free_parity = ((it / kStages) - 1) & 1;
        // Padded key rows: the block exists in full (zeros past the sequence's keys).
        const int row = kp0 + n_block * kBlockN;
        if (it >= kStages) mbarWait(barEmptyK(s), free_parity);
        mbarArriveExpectTx(barFullK(s), T::kKBytes);
        tmaLoad3d(sK + s * T::kKBytes, &args.k, barFullK(s), 0, row, hk);
        if (it >= kStages) mbarWait(barEmptyV(s), free_parity);
        mbarArriveExpectTx(barFullV(s), T::kVBytes);
        tmaLoad3d(sV + s * T::kVBytes, &args.v, barFullV(s), row, 0, hk);
      }
    }
  } else {
    // ---- consumers ----
    setMaxRegsInc<240>();
    const int cw = wg - 1;
    const int warp = (tid / 32) % 4;
    const int lane = tid & 31;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int row0 = cw * 64 + warp * 16;  // this warp's first row in the tile
    const int row_diag = m0 + row0 + g + kb.offset;

    // Q8 as the wgmma A fragment (rows g, g + 8; k32 step kk: bytes 4t.. in registers 0/1, 16 + 4t..
    // in 2/3) and the per-row score multiplier q_scale * scale * log2(e). Rows past the sequence
    // get zeros: their scores are 0, finite, and never stored.
    uint32_t qa[T::kQSteps][4];
    float row_mult[2], out_mult[2];
    uint32_t qoa[4];  // the outlier channels of Q: the m16n8k16 A fragment (rows g, g + 8)
    float ko_scale = 0.0f;
    if constexpr (T::kOutl) ko_scale = __ldg(p.ko_scale + static_cast<int64_t>(b) * p.heads_kv + hk);
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = m0 + row0 + g + 8 * hh;
      const bool valid = r < len_q;
      const int64_t qrow = static_cast<int64_t>(h) * p.total_q + q0 + r;
      const uint32_t* qg = reinterpret_cast<const uint32_t*>(p.q8 + qrow * D);
#pragma unroll
      for (int kk = 0; kk < T::kQSteps; ++kk) {
        qa[kk][hh] = valid ? __ldg(qg + kk * 8 + t) : 0u;
        qa[kk][2 + hh] = valid ? __ldg(qg + kk * 8 + 4 + t) : 0u;
      }
      row_mult[hh] = valid ? __ldg(p.q_scale + qrow) * p.mult : 0.0f;
      if constexpr (T::kOutl) {
        out_mult[hh] = valid ? __ldg(p.qo_scale + qrow) * ko_scale * p.mult : 0.0f;
        const uint32_t* qo = reinterpret_cast<const uint32_t*>(p.qo + qrow * kQuantOutliers);
        qoa[hh] = valid ? __ldg(qo + t) : 0u;
        qoa[2 + hh] = valid ? __ldg(qo + 4 + t) : 0u;
      }
    }
    const float* k_scale = p.k_scale + static_cast<int64_t>(hk) * (p.total_kp / kBlockN) + kp0 / kBlockN;
    // The outlier channels' K rows of a block as m16n8k16 B fragments (key g of n-tile nt,
    // channels 2t.. and 8 + 2t..), loaded when the block's S is issued.
    const uint32_t* kog = reinterpret_cast<const uint32_t*>(p.ko + (static_cast<int64_t>(hk) * p.total_kp + kp0) * kQuantOutliers);
    uint32_t kob[kNT][2];
    const auto loadKo = [&](int n_block) {
#pragma unroll
      for (int nt = 0; nt < (T::kOutl ? kNT : 0); ++nt) {
        const uint32_t* row = kog + static_cast<int64_t>(n_block * kBlockN + nt * 8 + g) * (kQuantOutliers / 2);
        kob[nt][0] = __ldg(row + t);
        kob[nt][1] = __ldg(row + 4 + t);
      }
    };

    float acc_o[1][kDT][4];
#pragma unroll
    for (int dt = 0; dt < kDT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[0][dt][e] = 0.0f;
    float(&o_flat)[kDT * 4] = *reinterpret_cast<float(*)[kDT * 4]>(&acc_o[0][0][0]);
    float row_max[1][2] = {{-INFINITY, -INFINITY}};
    float row_sum[1][2] = {{0.0f, 0.0f}};

    using SAcc = std::conditional_t<kQkFp8, float, int32_t>;
    SAcc s_acc[kNT * 4];      // S of the block whose softmax is next
    float sc[1][kNT][4];      // its scores, then probabilities
    uint32_t pa[T::kPSteps][4];  // P of the block whose P V is next
    float corr[1][2];
    float corr_pv[2] = {0.0f, 0.0f};  // fp8: the fold factor of the P V in flight
    float pv_tmp[kPvFp8 ? kDT * 4 : 1];  // fp8: one block's P V

    const auto issueS = [&](int s) {
      const uint64_t dk = opaqueDesc(smemDescK<T::kKSwizzle>(sK + s * T::kKBytes));
      wgmmaFence();
#pragma unroll
      for (int kk = 0; kk < T::kQSteps; ++kk) {
        const uint64_t db = descStep(dk, kk * 32);
        if constexpr (kQkFp8) {
          wgmmaE4m3RS<kBlockN>(s_acc, qa[kk], db, kk > 0 ? 1 : 0);
        } else {
          wgmmaS8RS<kBlockN>(s_acc, qa[kk], db, kk > 0 ? 1 : 0);
        }
      }
      wgmmaCommit();
    };
    const auto issuePV = [&](int s) {
      const uint64_t dv = opaqueDesc(smemDescK<T::kVSwizzle>(sV + s * T::kVBytes));
      if constexpr (kPvFp8) {
        fenceRegs(pv_tmp);
        wgmmaFence();
#pragma unroll
        for (int kk = 0; kk < T::kPSteps; ++kk) {
          const uint64_t db = descStep(dv, kk * 32);
          wgmmaE4m3RS<D>(pv_tmp, pa[kk], db, kk > 0 ? 1 : 0);
        }
      } else {
        fenceRegs(o_flat);
        wgmmaFence();
#pragma unroll
        for (int kk = 0; kk < T::kPSteps; ++kk) {
          const uint64_t db = descStep(dv, kk * 32);
          wgmmaRSK<__half, D>(o_flat, pa[kk], db, 1);
        }
      }
      wgmmaCommit();
    };
    // After P_j V_j completed: fp8 folds its temporary in (acc = acc * corr_j + tmp), f16 rescales
    // acc for block j + 1 (its P V adds to acc directly).
    const auto afterPV = [&]() {
      if constexpr (kPvFp8) {
        fenceRegs(pv_tmp);
#pragma unroll
        for (int i = 0; i < kDT * 4; ++i) o_flat[i] = fmaf(o_flat[i], corr_pv[(i >> 1) & 1], pv_tmp[i]);
      } else {
        fenceRegs(o_flat);
      }
    };
    const auto release = [&](uint32_t bar) {
      __syncwarp();
      if (lane == 0) mbarArrive(bar);
    };
    // S of block n_block (in s_acc) -> probabilities times the P scale; corr gets the factor the
    // output accumulated so far must be scaled by. Raw scores (int8: offset by kIntScoreZero) or,
    // with kPreScale, scores in log2 units.
    const auto scoresToP = [&](int n_block) {
      const float kscale = __ldg(k_scale + n_block);
      float mult[2];
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const float bm = row_mult[hh] * kscale;
        mult[hh] = kPreScale ? 1.0f : fmaxf(bm, kMinScoreMult);
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const SAcc x = s_acc[4 * nt + 2 * hh + e];
            float xf;
            if constexpr (kQkFp8) {
              xf = kPreScale ? x * bm : x;
            } else {
              xf = kPreScale ? smallIntToFloat(x) * bm : offsetIntToFloat(x);
            }
            sc[0][nt][2 * hh + e] = xf;
          }
      }
#pragma unroll
      for (int nt = 0; nt < (T::kOutl ? kNT : 0); ++nt) {
        float so[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        mma16816<__half>(so, qoa, kob[nt][0], kob[nt][1]);
#pragma unroll
        for (int e = 0; e < 4; ++e) sc[0][nt][e] = fmaf(so[e], out_mult[e >> 1], sc[0][nt][e]);
      }
      if (n_block >= kb.mask_right_from || n_block < kb.mask_left_below)
        maskScores<1, kNT>(sc, p, row_diag, n_block * kBlockN, t, len_k);
      quantSoftmaxStep<kNT, kIntRaw>(sc, mult, kPLog2, row_max, row_sum, corr);
    };
    const auto packAll = [&]() {
      if constexpr (kPvFp8) {
        // k32 step kk holds the keys of n-tiles 4kk .. 4kk + 3 in quant_prep.cu's slot order.
#pragma unroll
        for (int kk = 0; kk < T::kPSteps; ++kk) {
          const float(&s0)[4] = sc[0][4 * kk];
          const float(&s1)[4] = sc[0][4 * kk + 1];
          const float(&s2)[4] = sc[0][4 * kk + 2];
          const float(&s3)[4] = sc[0][4 * kk + 3];
          pa[kk][0] = quant::packE4m3x4(s0[0], s0[1], s1[0], s1[1]);
          pa[kk][1] = quant::packE4m3x4(s0[2], s0[3], s1[2], s1[3]);
          pa[kk][2] = quant::packE4m3x4(s2[0], s2[1], s3[0], s3[1]);
          pa[kk][3] = quant::packE4m3x4(s2[2], s2[3], s3[2], s3[3]);
        }
      } else {
#pragma unroll
        for (int kk = 0; kk < T::kPSteps; ++kk) packP<__half>(pa[kk], sc, 0, kk);
      }
    };
    // The turn between S / P V issue and the factor for the next fold: fp8 keeps block j's corr
    // until its P V is folded; f16 rescales right away.
    const auto takeCorr = [&]() {
      if constexpr (kPvFp8) {
        corr_pv[0] = corr[0][0];
        corr_pv[1] = corr[0][1];
      } else {
        rescaleRows<1, kDT>(acc_o, corr);
      }
    };
    // Ping-pong: warpgroup w issues only between bar.sync(kTurn + w) and its bar.arrive on the
    // other's barrier; consumer 1 opens consumer 0's first turn. Both take (blocks + 1) turns, and
    // consumer 1 skips its last arrive so every barrier completes exactly as often as it is waited on.
    constexpr int kTurn = 3;  // ids 1, 2: the epilogue's per-warpgroup barriers
    const auto turnBegin = [&]() { namedBarrierSync(kTurn + cw, 256); };
    const auto turnEnd = [&]() { namedBarrierArrive(kTurn + (1 - cw), 256); };

    int n_block = kb.n_max - 1;
    if (n_block >= kb.n_min) {
      if (cw == 1) turnEnd();
      mbarWait(barFullK(0), 0);
      turnBegin();
      issueS(0);
      turnEnd();
      loadKo(n_block);
      wgmmaWait<0>();
      fenceRegs(s_acc);
      release(barEmptyK(0));
      scoresToP(n_block);
      // The accumulator is still 0: fp8 folds with any finite factor, f16 needs no rescale.
      if constexpr (kPvFp8) takeCorr();
      packAll();
      int it = 1;
      for (int n_next = n_block - 1; n_next >= kb.n_min; --n_next, ++it) {
        const int s = it % kStages, prev = (it - 1) % kStages;
        mbarWait(barFullK(s), (it / kStages) & 1);
        mbarWait(barFullV(prev), ((it - 1) / kStages) & 1);
        turnBegin();
        issueS(s);
        issuePV(prev);
        turnEnd();
        loadKo(n_next);
        wgmmaWait<1>();  // S of n_next
        fenceRegs(s_acc);
        release(barEmptyK(s));
        scoresToP(n_next);
        wgmmaWait<0>();  // P V of n_block
        afterPV();
        release(barEmptyV(prev));
        takeCorr();
        packAll();
        n_block = n_next;
      }
      const int last = (it - 1) % kStages;
      mbarWait(barFullV(last), ((it - 1) / kStages) & 1);
      turnBegin();
      issuePV(last);
      if (cw == 0) turnEnd();
      wgmmaWait<0>();
      afterPV();
    }

    // Epilogue: o = acc * v_scale[c] / rowsum (both carry the P scale); lse (natural log) + scale * q . mean_k.
    // O is staged through this warpgroup's rows of the output tile (128-byte rows per 64 columns,
    // swizzled as the bf16 kernel's) so the global stores are 16-byte rows.
    const bool out_bf16 = p.in_bf16 != 0;
    const float* vs = p.v_scale + (static_cast<int64_t>(b) * p.heads_kv + hk) * D;
    float* lse_row0 = nullptr;
    if (p.lse != nullptr) {
      lse_row0 = p.lse + m0 +
                 (p.varlen ? static_cast<int64_t>(h) * p.total_q + q0 : (static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen_q);
    }
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float sum = row_sum[0][hh];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const bool empty = !(sum > 0.0f);
      const float inv = empty ? 0.0f : 1.0f / sum;
      const int r = row0 + g + 8 * hh;
      if (lse_row0 != nullptr && t == 0 && m0 + r < len_q) {
        const float qm = p.q_mean[static_cast<int64_t>(h) * p.total_q + q0 + m0 + r];
        lse_row0[r] = empty ? -INFINITY : (row_max[0][hh] + (__log2f(sum) - kPLog2)) * kLn2 + qm;
      }
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        const float2 vsc = __ldg(reinterpret_cast<const float2*>(vs + dt * 8 + 2 * t));
        const float lo = acc_o[0][dt][2 * hh] * (inv * vsc.x), hi = acc_o[0][dt][2 * hh + 1] * (inv * vsc.y);
        const uint32_t v = out_bf16 ? ElemTraits<__nv_bfloat16>::pack(lo, hi) : ElemTraits<__half>::pack(lo, hi);
        stShared32(stagedO<kBlockM>(sO, r, dt, t), v);
      }
    }
    namedBarrierSync(1 + cw, 128);
    const int64_t o_base = p.varlen ? static_cast<int64_t>(q0) * p.o_row_stride : b * p.o_batch_stride;
    uint16_t* og = static_cast<uint16_t*>(p.o) + o_base + static_cast<int64_t>(h) * p.o_head_stride;
    storeStagedRows<D, kBlockM>(sO, og, p.o_row_stride, cw, tid - 128 * wg, m0, len_q);
  }
#else
  __trap();  // only the sm_90a image has a body; the host never launches another (see below)
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

// ---- host launcher -------------------------------------------------------------------------

template <typename T>
bool quantSm90ImageLoaded() {
  static const bool loaded = sm90ImageOf(quantFwdSm90Kernel<T>);
  return loaded;
}

template <int D, QuantMode kMode, bool kOutl>
void launchQuantFwdSm90(const quant::QuantArgs& a, cudaStream_t stream) {
  using T = QuantSm90Traits<D, kMode, kOutl>;
  if (!quantSm90ImageLoaded<T>())
    throwRange("this build of attn-cuda has no sm_90a kernels (rebuild with sm_90a in ATTN_CUDA_GENCODE)");
  QuantSm90Args args;
  args.p = a;
  const int64_t kp = a.total_kp;
  args.k = makeBoxMap3d(a.k8, 1, D, kp, a.heads_kv, D, kp * D, D, T::kBlockN, T::kKSwizzle);
  args.v = makeBoxMap3d(a.vt, T::kVElem, kp, D, a.heads_kv, kp * T::kVElem, kp * D * T::kVElem, T::kBlockN, D,
                        T::kVSwizzle);
  const int num_m = (a.seqlen_q + T::kBlockM - 1) / T::kBlockM;
  args.p.lpt_group = 1;
  if (a.window_right >= 0) {  // work grows with the query block: longest first (flash::tileOfBlock)
    int device = 0, sms = 0;
    ATTN_CUDA_CHECK(cudaGetDevice(&device));
    ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    const int64_t two_waves = 2LL * sms;  // one CTA per SM
    const int64_t pairs = static_cast<int64_t>(a.heads_q) * a.batch;
    args.p.lpt_group = static_cast<int>(std::min<int64_t>(pairs, std::max<int64_t>(1, (two_waves + num_m - 1) / num_m)));
  }
  auto kernel = quantFwdSm90Kernel<T>;
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
  kernel<<<dim3(num_m, a.heads_q, a.batch), T::kThreads, T::kSmemBytes, stream>>>(args);
  ATTN_CUDA_CHECK_LAUNCH();
}

template <int D, bool kOutl>
void launchQuantFwdSm90Variant(const quant::QuantArgs& a, QuantMode mode, cudaStream_t stream) {
  switch (mode) {
    case QuantMode::Int8Fp8: launchQuantFwdSm90<D, QuantMode::Int8Fp8, kOutl>(a, stream); break;
    case QuantMode::Int8: launchQuantFwdSm90<D, QuantMode::Int8, kOutl>(a, stream); break;
    case QuantMode::Fp8: launchQuantFwdSm90<D, QuantMode::Fp8, kOutl>(a, stream); break;
    default: throwRange("quantized forward: unknown mode");
  }
}

template <int D>
void launchQuantFwdSm90ForMode(const quant::QuantArgs& a, QuantMode mode, cudaStream_t stream) {
  if (a.outliers) {
    launchQuantFwdSm90Variant<D, true>(a, mode, stream);
  } else {
    launchQuantFwdSm90Variant<D, false>(a, mode, stream);
  }
}

}  // namespace attn::cuda::hopper
