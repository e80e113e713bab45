// The quantized attention forward kernel (SageAttention-style), templated on head dim and on the
// precisions only (kFp8: e4m3 P and V, sm_89+; else f16 P and V, sm_80+; kQkFp8: e4m3 Q and K,
// sm_89+, mode fp8; else int8). Everything else
// (masking, GQA, varlen, scale, lse, output dtype) is runtime, as in the flash kernel whose
// structure, tile copies and scheduling (flash_kernel.cuh) it reuses.
//
// Inputs come from quant_prep.cu (see quant_internal.h): int8 Q [h][token][D] with a scale per
// token, int8 smoothed K [hk][padded key][D] with a scale per 64-key tile, V^T [hk][D][padded key]
// (fp8 or f16) with a scale per channel.
//
// One CTA = 128 query rows of one (sequence, head), 4 warps x 2 m16 tiles; key tiles of 64 from
// the last to the first, K double-buffered, as flash. Per tile:
//   S = Q8 K8^T on mma.m16n8k32.s8 (exact int32), x = float(S) * q_scale * k_scale * scale * log2e
//   with kOutl, plus the outlier channels' f16 dot (m16n8k16, Q fragments in registers, their K
//   rows staged with the K tile) * qo_scale * ko_scale * scale * log2e;
//   mask; online softmax (exp2);
//   kFp8:  P8 = e4m3(P * 448) straight from the S registers (the fragment order of m16n8k32 is
//          matched by V^T's key permutation); per 8-channel tile, the tile's two k32 MMAs go to a
//          zeroed f32 temporary that is then folded in as acc = acc * corr + tmp (two-level
//          accumulation: the e4m3 MMA accumulates with fewer than 24 mantissa bits);
//   f16:   acc *= corr; acc += P16 V16^T on m16n8k16 (full f32 accumulation).
// Epilogue: o = acc * v_scale[c] / (P scale * rowsum), lse = natural-log lse + scale * q . mean_k.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "../flash/flash_kernel.cuh"
#include "quant_internal.h"
#include "quant_ptx.cuh"

namespace attn::cuda::quant {

template <int D, bool kFp8, bool kOutl>
struct QuantTraits {
  static constexpr int kMTiles = kBlockM / (16 * kWarps);  // 2
  static constexpr int kNTiles = kBlockN / 8;              // 8 n8 tiles of S
  static constexpr int kDTiles = D / 8;                    // n8 tiles of O
  static constexpr int kKSteps = D / 32;                   // k32 steps of Q K^T
  static constexpr int kVBytes = kFp8 ? 1 : 2;
  // Tiles in 16-bit units: an int8 row of D bytes is D / 2 columns of SwizzledTile.
  using TileQ = flash::SwizzledTile<kBlockM, D / 2>;
  using TileK = flash::SwizzledTile<kBlockN, D / 2>;
  using TileV = flash::SwizzledTile<D, kBlockN * kVBytes / 2>;  // V^T: D rows of 64 keys
  using TileO = flash::SwizzledTile<kBlockM, D>;                // 16-bit output staging
  static constexpr int kSmemQ = TileQ::kBytes;
  static constexpr int kSmemK = 2 * TileK::kBytes;
  static constexpr int kSmemV = TileV::kBytes;
  static constexpr int kKoBytes = kBlockN * kQuantOutliers * 2;  // a block's outlier K rows (f16)
  static constexpr int kSmemBytes = kSmemQ + kSmemK + kSmemV + (kOutl ? 2 * kKoBytes : 0) + flash::kSmemAlign;
  static_assert(TileO::kBytes <= kSmemQ + kSmemK + kSmemV, "the output tile reuses the input tiles");
  static_assert(D == 64 || D == 128, "head dims 64 and 128");
  static_assert(kKoBytes == kThreads * 16, "one 16-byte copy per thread stages a block's outlier K");
};

__device__ __forceinline__ uint32_t packOut(float lo, float hi, bool bf16) {
  return bf16 ? ElemTraits<__nv_bfloat16>::pack(lo, hi) : ElemTraits<__half>::pack(lo, hi);
}

template <int D, bool kFp8, bool kQkFp8, bool kOutl>
__global__ void __launch_bounds__(kThreads, 2) quantFwdKernel(const QuantArgs p) {
  using T = QuantTraits<D, kFp8, kOutl>;
  using TileQ = typename T::TileQ;
  using TileK = typename T::TileK;
  using TileV = typename T::TileV;
  using TileO = typename T::TileO;
  constexpr int kMT = T::kMTiles;
  constexpr int kNT = T::kNTiles;
  constexpr int kDT = T::kDTiles;
  constexpr float kPScale = kFp8 ? kQuantPScaleFp8 : 1.0f;

  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  int m_block, h, b;
  flash::tileOfBlock(p.lpt_group, m_block, h, b);
  const int hk = h / p.group;

  const int q0 = __ldg(p.q_start + b);
  const int len_q = __ldg(p.q_start + b + 1) - q0;
  const int len_k = __ldg(p.k_start + b + 1) - __ldg(p.k_start + b);
  const int kp0 = __ldg(p.kp_start + b);
  const int m0 = m_block * kBlockM;
  if (m0 >= len_q) return;

  const flash::KeyBlocks keys = flash::keyBlocks(p, m0, kBlockM, kBlockN, len_q, len_k);
  const int n_block_min = keys.n_min, n_block_max = keys.n_max;

  // Workspace rows in 16-bit units (the tile copies move 16-byte chunks of uint16_t).
  const uint16_t* qg = reinterpret_cast<const uint16_t*>(p.q8 + (static_cast<int64_t>(h) * p.total_q + q0) * D);
  const uint16_t* kg = reinterpret_cast<const uint16_t*>(p.k8 + (static_cast<int64_t>(hk) * p.total_kp + kp0) * D);
  const uint16_t* vg = reinterpret_cast<const uint16_t*>(static_cast<const unsigned char*>(p.vt) +
                                                         (static_cast<int64_t>(hk) * D * p.total_kp + kp0) * T::kVBytes);
  constexpr int64_t kRowQ = D / 2;  // row strides in 16-bit units
  const int64_t row_v = static_cast<int64_t>(p.total_kp) * T::kVBytes / 2;
  const float* k_scale = p.k_scale + static_cast<int64_t>(hk) * (p.total_kp / kBlockN) + kp0 / kBlockN;
  // Outlier channels: the sequence's f16 K rows ([key][kQuantOutliers]), staged per block beside K.
  const unsigned char* kog = reinterpret_cast<const unsigned char*>(p.ko + (static_cast<int64_t>(hk) * p.total_kp + kp0) * kQuantOutliers);

  const uint32_t sQ = (smemAddr(smem) + (flash::kSmemAlign - 1)) & ~static_cast<uint32_t>(flash::kSmemAlign - 1);
  const uint32_t sK = sQ + T::kSmemQ;
  const uint32_t sV = sK + T::kSmemK;
  const uint32_t sKo = sV + T::kSmemV;  // two stages, as K
  const auto loadKo = [&](int st, int n0) { cpAsync16(sKo + st * T::kKoBytes + tid * 16, kog + static_cast<int64_t>(n0) * kQuantOutliers * 2 + tid * 16, true); };

  flash::loadTile<TileQ, kThreads>(sQ, qg + m0 * kRowQ, kRowQ, len_q - m0, tid);
  cpAsyncCommit();
  if (n_block_max > n_block_min) {
    const int n0 = (n_block_max - 1) * kBlockN;
    flash::loadTile<TileK, kThreads>(sK, kg + n0 * kRowQ, kRowQ, kBlockN, tid);  // padded: whole tiles exist
    if constexpr (kOutl) loadKo(0, n0);
  }
  cpAsyncCommit();

  const int warp_row0 = warp * 16 * kMT;
  const uint32_t lQ = TileQ::laneBase(sQ + warp_row0 * TileQ::kRowBytes, flash::laneRowA(lane), flash::laneChunkA(lane));
  const uint32_t lK = TileK::laneBase(sK, flash::laneRowB(lane), flash::laneChunkB(lane));
  const uint32_t lV = TileV::laneBase(sV, flash::laneRowB(lane), flash::laneChunkB(lane));

  const int g = lane >> 2;
  const int t = lane & 3;
  // Per-row multiplier q_scale * scale * log2(e) (0 for rows past the sequence: their scores are
  // 0, finite, and never stored).
  float row_mult[kMT][2], out_mult[kMT][2];
  uint32_t qoa[kMT][4];  // the outlier channels of Q: m16n8k16 A fragments (rows g, g + 8)
  float ko_scale = 0.0f;
  if constexpr (kOutl) ko_scale = __ldg(p.ko_scale + static_cast<int64_t>(b) * p.heads_kv + hk);
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = m0 + warp_row0 + mt * 16 + g + 8 * hh;
      const int64_t qrow = static_cast<int64_t>(h) * p.total_q + q0 + r;
      const bool valid = r < len_q;
      row_mult[mt][hh] = valid ? p.q_scale[qrow] * p.mult : 0.0f;
      if constexpr (kOutl) {
        out_mult[mt][hh] = valid ? __ldg(p.qo_scale + qrow) * ko_scale * p.mult : 0.0f;
        const uint32_t* qo = reinterpret_cast<const uint32_t*>(p.qo + qrow * kQuantOutliers);
        qoa[mt][hh] = valid ? __ldg(qo + t) : 0u;
        qoa[mt][2 + hh] = valid ? __ldg(qo + 4 + t) : 0u;
      }
    }

  float acc_o[kMT][kDT][4];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int dt = 0; dt < kDT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[mt][dt][e] = 0.0f;
  float row_max[kMT][2];  // log2 units; -inf: nothing seen yet
  float row_sum[kMT][2];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      row_max[mt][hh] = -INFINITY;
      row_sum[mt][hh] = 0.0f;
    }

  const int row_diag = m0 + warp_row0 + g + keys.offset;

  int stage = 0;
  for (int n_block = n_block_max - 1; n_block >= n_block_min; --n_block) {
    const int n0 = n_block * kBlockN;
    const float kb = __ldg(k_scale + n_block);  // in flight during the wait
    cpAsyncWait<0>();  // K_j
    __syncthreads();   // K_j visible; everyone is done with V_{j+1} and the other K stage

    flash::loadTile<TileV, kThreads>(sV, vg + static_cast<int64_t>(n0) * T::kVBytes / 2, row_v, D, tid);
    cpAsyncCommit();
    if (n_block > n_block_min) {
      const int n0_next = n0 - kBlockN;
      flash::loadTile<TileK, kThreads>(sK + (stage ^ 1) * TileK::kBytes, kg + n0_next * kRowQ, kRowQ, kBlockN, tid);
      if constexpr (kOutl) loadKo(stage ^ 1, n0_next);
    }
    cpAsyncCommit();

    // S = Q8 K8^T (int32, exact; fp8: f32)
    using SAcc = std::conditional_t<kQkFp8, float, int32_t>;
    SAcc si[kMT][kNT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) si[mt][nt][e] = 0;
    const uint32_t lKj = lK + stage * TileK::kBytes;
#pragma unroll
    for (int ks = 0; ks < T::kKSteps; ++ks) {
      uint32_t a[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) ldmatrixX4(a[mt], TileQ::subtileAddr(lQ, mt * 16, 2 * ks));
#pragma unroll
      for (int np = 0; np < kNT / 2; ++np) {
        uint32_t bk[4];
        ldmatrixX4(bk, TileK::subtileAddr(lKj, np * 16, 2 * ks));
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          if constexpr (kQkFp8) {
            mmaE4m3(si[mt][2 * np], a[mt], bk[0], bk[1]);
            mmaE4m3(si[mt][2 * np + 1], a[mt], bk[2], bk[3]);
          } else {
            mmaS8(si[mt][2 * np], a[mt], bk[0], bk[1]);
            mmaS8(si[mt][2 * np + 1], a[mt], bk[2], bk[3]);
          }
        }
      }
    }

    // Scores in log2 units: the 8-bit dot, then the outlier channels' f16 dot added.
    float s[kMT][kNT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const float bm = row_mult[mt][hh] * kb;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) s[mt][nt][2 * hh + e] = static_cast<float>(si[mt][nt][2 * hh + e]) * bm;
      }
    // Outlier K rows as m16n8k16 B fragments: key g of n-tile nt, channels 2t.. and 8 + 2t...
    const uint32_t koj = sKo + stage * T::kKoBytes + g * (kQuantOutliers * 2) + 4 * t;
#pragma unroll
    for (int nt = 0; nt < (kOutl ? kNT : 0); ++nt) {
      const uint32_t b0 = ldShared32(koj + nt * 8 * kQuantOutliers * 2), b1 = ldShared32(koj + nt * 8 * kQuantOutliers * 2 + 16);
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        float so[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        mma16816<__half>(so, qoa[mt], b0, b1);
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = fmaf(so[e], out_mult[mt][e >> 1], s[mt][nt][e]);
      }
    }

    if (n_block >= keys.mask_right_from || n_block < keys.mask_left_below)
      flash::maskScores<kMT, kNT>(s, p, row_diag, n0, t, len_k);

    // Online softmax on log2-unit scores (multiplier 1); the fp8 path folds corr into its P V below.
    float corr[kMT][2];
    flash::softmaxStep<kMT, kNT>(s, row_max, row_sum, corr, 1.0f);
    if constexpr (!kFp8) flash::rescaleRows<kMT, kDT>(acc_o, corr);

    cpAsyncWait<1>();  // V_j (K_{j-1}, committed after it, may still be in flight)
    __syncthreads();

    if constexpr (kFp8) {
      // P8: k32 step kk covers the S n-tiles 4kk .. 4kk + 3 (see fp8KeySlot in prep_layout.cuh).
      uint32_t pa[kMT][2][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int kk = 0; kk < 2; ++kk) {
          const float(&s0)[4] = s[mt][4 * kk];
          const float(&s1)[4] = s[mt][4 * kk + 1];
          const float(&s2)[4] = s[mt][4 * kk + 2];
          const float(&s3)[4] = s[mt][4 * kk + 3];
          pa[mt][kk][0] = packE4m3x4(s0[0] * kPScale, s0[1] * kPScale, s1[0] * kPScale, s1[1] * kPScale);
          pa[mt][kk][1] = packE4m3x4(s0[2] * kPScale, s0[3] * kPScale, s1[2] * kPScale, s1[3] * kPScale);
          pa[mt][kk][2] = packE4m3x4(s2[0] * kPScale, s2[1] * kPScale, s3[0] * kPScale, s3[1] * kPScale);
          pa[mt][kk][3] = packE4m3x4(s2[2] * kPScale, s2[3] * kPScale, s3[2] * kPScale, s3[3] * kPScale);
        }
#pragma unroll
      for (int dp = 0; dp < kDT / 2; ++dp) {
        float tmp[kMT][2][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
          for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e) tmp[mt][i][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < 2; ++kk) {
          uint32_t bv[4];
          ldmatrixX4(bv, TileV::subtileAddr(lV, dp * 16, 2 * kk));
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            mmaE4m3(tmp[mt][0], pa[mt][kk], bv[0], bv[1]);
            mmaE4m3(tmp[mt][1], pa[mt][kk], bv[2], bv[3]);
          }
        }
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
          for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e)
              acc_o[mt][2 * dp + i][e] = fmaf(acc_o[mt][2 * dp + i][e], corr[mt][e >> 1], tmp[mt][i][e]);
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < kNT / 2; ++kk) {
        uint32_t pa[kMT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) flash::packP<__half>(pa[mt], s, mt, kk);
#pragma unroll
        for (int dp = 0; dp < kDT / 2; ++dp) {
          uint32_t bv[4];
          ldmatrixX4(bv, TileV::subtileAddr(lV, dp * 16, 2 * kk));
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            mma16816<__half>(acc_o[mt][2 * dp], pa[mt], bv[0], bv[1]);
            mma16816<__half>(acc_o[mt][2 * dp + 1], pa[mt], bv[2], bv[3]);
          }
        }
      }
    }
    stage ^= 1;
  }

  // Epilogue: normalize with the V channel scales, lse, stage O through shared memory.
  cpAsyncWait<0>();
  __syncthreads();  // every warp is done with sQ/sK/sV
  const bool out_bf16 = p.in_bf16 != 0;
  const float* vs = p.v_scale + (static_cast<int64_t>(b) * p.heads_kv + hk) * D;
  float* lse_row0 = nullptr;
  if (p.lse != nullptr) {
    lse_row0 = p.lse + m0 + (p.varlen ? static_cast<int64_t>(h) * p.total_q + q0 : (static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen_q);
  }
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float sum = row_sum[mt][hh];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const bool empty = !(sum > 0.0f);
      const float inv = empty ? 0.0f : 1.0f / (sum * kPScale);
      const int r = warp_row0 + mt * 16 + g + 8 * hh;
      if (lse_row0 != nullptr && t == 0 && m0 + r < len_q) {
        const float qm = p.q_mean[static_cast<int64_t>(h) * p.total_q + q0 + m0 + r];
        lse_row0[r] = empty ? -INFINITY : (row_max[mt][hh] + __log2f(sum)) * flash::kLn2 + qm;
      }
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        const float2 sc = __ldg(reinterpret_cast<const float2*>(vs + dt * 8 + 2 * t));
        const uint32_t v = packOut(acc_o[mt][dt][2 * hh] * (inv * sc.x), acc_o[mt][dt][2 * hh + 1] * (inv * sc.y), out_bf16);
        stShared32(sQ + TileO::chunkOffset(r, dt) + 4 * t, v);
      }
    }
  __syncthreads();
  const int64_t o_base = p.varlen ? static_cast<int64_t>(q0) * p.o_row_stride : b * p.o_batch_stride;
  uint16_t* og = static_cast<uint16_t*>(p.o) + o_base + static_cast<int64_t>(h) * p.o_head_stride;
  flash::storeTile<TileO, kThreads>(sQ, og + m0 * p.o_row_stride, p.o_row_stride, len_q - m0, tid);
}

template <int D, bool kFp8, bool kQkFp8, bool kOutl>
void launchQuantFwdVariant(const QuantArgs& args, cudaStream_t stream) {
  using T = QuantTraits<D, kFp8, kOutl>;
  QuantArgs p = args;
  const int num_m = (p.seqlen_q + kBlockM - 1) / kBlockM;
  const dim3 grid(num_m, p.heads_q, p.batch);
  auto kernel = quantFwdKernel<D, kFp8, kQkFp8, kOutl>;
  if (T::kSmemBytes > 48 * 1024) {
    ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
  }
  p.lpt_group = 1;
  if (p.window_right >= 0) {  // work grows with the query block: longest first (flash::tileOfBlock)
    int device = 0, sms = 0;
    ATTN_CUDA_CHECK(cudaGetDevice(&device));
    ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    const int64_t two_waves = 2LL * sms * 2;
    const int64_t pairs = static_cast<int64_t>(p.heads_q) * p.batch;
    p.lpt_group = static_cast<int>(std::min<int64_t>(pairs, std::max<int64_t>(1, (two_waves + num_m - 1) / num_m)));
  }
  kernel<<<grid, kThreads, T::kSmemBytes, stream>>>(p);
  ATTN_CUDA_CHECK_LAUNCH();
}

template <int D, bool kFp8, bool kQkFp8 = false>
void launchQuantFwd(const QuantArgs& args, cudaStream_t stream) {
  if (args.outliers) {
    launchQuantFwdVariant<D, kFp8, kQkFp8, true>(args, stream);
  } else {
    launchQuantFwdVariant<D, kFp8, kQkFp8, false>(args, stream);
  }
}

}  // namespace attn::cuda::quant
