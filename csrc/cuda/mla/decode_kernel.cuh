// The MLA decode / prefill kernel (absorbed weights), templated on the CTA's row count M (16 or 64)
// and on the cache storage (bf16, or fp8 e4m3 with per-token scales). See mla_internal.h for the
// CTA shape. Per tile of 32 keys:
//   B1  wait for the tile's cp.async group; issue the tile `stages - 1` ahead (pages looked up one
//       tile earlier, in registers); fp8: convert the staged bytes to bf16 (exact) and sync again;
//   S   warps 0..kSWarps-1: S = Q K^T over 576 columns (mma.sync m16n8k16, fp32), scale (log2
//       units), softcap, mask (causal, split end); row max of the warp's keys -> shared;
//   B2  row max over the warps sharing a row; p = exp2(s - m); P (bf16) and the rescale factor
//       alpha -> shared. fp8: score = s_latent * scale_latent + s_rope * scale_rope (two
//       accumulators), and P is stored pre-multiplied by the latent scale, so the dequantization
//       costs no work on the 512-wide values;
//   B3  every warp: O[:, 64 w .. 64 w + 63] = alpha * O + P V, V = the tile's latent columns
//       (ldmatrix.trans of the same shared tile).
// Epilogue: l summed over the S warps, O / l written as bf16 (one split) or fp32 partials + lse to
// the workspace for combine (csrc/cuda/paged/combine.cu, value width 512).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../check.h"
#include "../common/fp8_convert.cuh"
#include "../common/ptx.cuh"
#include "../common/stage_ring.cuh"
#include "cta_range.cuh"
#include "mla_internal.h"
#include "row_output.cuh"

namespace attn::cuda::mla {

// 8-byte cp.async (.ca: the only form with 8 bytes); src_bytes 0 zero-fills.
__device__ __forceinline__ void cpAsync8(uint32_t smem_addr, const void* src, bool valid) {
  const int src_bytes = valid ? 8 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smem_addr), "l"(src), "r"(src_bytes) : "memory");
}

__device__ __forceinline__ void stShared128(uint32_t addr, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  asm volatile("st.shared.v4.b32 [%0], {%1,%2,%3,%4};\n" ::"r"(addr), "r"(a), "r"(b), "r"(c), "r"(d) : "memory");
}

__device__ __forceinline__ float ldSharedF32(uint32_t addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(addr) : "memory");
  return v;
}

// Byte offset of 16-byte chunk `chunk` (0..71) of row `row` in a [rows][576] bf16 tile, XOR-swizzled
// within groups of 8 chunks: ldmatrix (8 rows, one chunk column) and row-contiguous cp.async
// writes are conflict-free (a row is 9 x 128 bytes, so every row starts at bank 0).
__device__ __forceinline__ uint32_t swzRow(int row, int chunk) {
  return static_cast<uint32_t>((row * (kRowBytes / 16) + (chunk ^ (row & 7))) * 16);
}

// The P tile [M][32] bf16 (4 chunks per row, two rows per 128 bytes): chunk XOR (row / 2) % 4
// makes the 8 rows of an ldmatrix hit 8 distinct 16-byte bank groups.
__device__ __forceinline__ uint32_t swzP(int row, int chunk) {
  return static_cast<uint32_t>(row * 64 + ((chunk ^ ((row >> 1) & 3)) * 16));
}

// Two e4m3 (low byte first) -> two bf16 packed (low first). Exact: every e4m3 value is a bf16.
__device__ __forceinline__ uint32_t fp8x2ToBf16x2(uint32_t two) {
  const float2 f = e4m3x2ToFloat2(two);
  return ElemTraits<__nv_bfloat16>::pack(f.x, f.y);
}

template <int M, bool kFp8>
struct DecodeCfg {
  static constexpr int kWarpsM = M / 16;
  static constexpr int kWarpsN = warpsN(M);
  static constexpr int kSWarps = kWarpsM * kWarpsN;        // warps computing S
  static constexpr int kKeysPerWarp = kTileKeys / kWarpsN;  // 16 (M = 64) or 8 (M = 16)
  static constexpr int kNT = kKeysPerWarp / 8;              // n-tiles of S per warp
  static constexpr int kMT = M / 16;                        // m-tiles of O per warp
  static constexpr int kCols = kMlaLatent / kWarps;         // O columns per warp
  static constexpr int kKSteps = kMlaRow / 16;              // 36
  static constexpr int kLatentSteps = kMlaLatent / 16;      // 32
  static constexpr int kRedBytes = redBytes(M);
  static constexpr int kPBytes = pBytes(M);
  static constexpr int kQBytes = qBytes(M);
  static_assert(M == 16 || M == 64, "rows per CTA");
  static_assert(kSWarps <= kWarps && kNT >= 1 && kNT <= 2, "S warp layout");
  static_assert(kCols == 64, "PV: 8 warps x 64 columns");
  static_assert(kThreads == kTileKeys * 8, "loader: 8 threads per key row");
};

template <int M, bool kFp8>
__global__ void __launch_bounds__(kThreads, 1) mlaDecodeKernel(const MlaArgs a) {
  using Cfg = DecodeCfg<M, kFp8>;
  using T = __nv_bfloat16;
  constexpr int N = kTileKeys;
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  const int stages = a.stages;  // >= 2

  extern __shared__ __align__(128) unsigned char smem[];
  float* s_max = reinterpret_cast<float*>(smem);  // [kWarpsN][M] row max of each S warp column
  float* s_l = s_max + Cfg::kWarpsN * M;          // [kWarpsN][M] row sums (epilogue)
  float* s_alpha = s_l + Cfg::kWarpsN * M;        // [M] rescale factor of the current tile
  float* s_mrow = s_alpha + M;                    // [M] final row max (epilogue)
  const uint32_t s_base = smemAddr(smem);
  const uint32_t s_p = s_base + Cfg::kRedBytes;
  const uint32_t s_q = s_p + Cfg::kPBytes;
  const uint32_t s_kv = s_q + Cfg::kQBytes;
  // bf16 cache: tile of stage s at s_kv + s * kTileBytes. fp8: one bf16 tile at s_kv, then the
  // staged e4m3 tiles and their scales.
  const uint32_t s_stage8 = s_kv + kTileBytes;
  const uint32_t s_scale = s_stage8 + stages * kTile8Bytes;

  if (a.num_splits > 1) launchDependents();

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  MlaCta cta;
  if (!mlaCtaOf<M, N>(a, cta)) return;  // uniform over the CTA
  const int b = cta.b, split = cta.split, q0 = cta.q0, m0 = cta.m0, mrows = cta.mrows;
  const int kbeg = cta.kbeg, kend = cta.kend, ntiles = cta.ntiles;
  auto rowHi = [&](int r) { return cta.rowHi(a, r); };

  // Q: rows r < mrows from global, the rest zero. Part of the first cp.async group.
  {
    const T* q = static_cast<const T*>(a.q);
    for (int u = tid; u < M * (kRowBytes / 16); u += kThreads) {
      const int r = u / (kRowBytes / 16), c = u % (kRowBytes / 16);
      const bool valid = r < mrows;
      const T* src = q;
      if (valid) {
        const int m = m0 + r, qi = m / a.heads, h = m - qi * a.heads;
        src = q + static_cast<int64_t>(q0 + qi) * a.q_row_stride + static_cast<int64_t>(h) * a.q_head_stride + c * 8;
      }
      cpAsync16(s_q + swzRow(r, c), src, valid);
    }
  }

  // Loads: thread (ld_row, ld_sub) copies chunks ld_sub + 8 i of key row ld_row of each tile.
  const int ld_row = tid >> 3, ld_sub = tid & 7;
  const int32_t* bt = mlaPagesOf(a, b);
  const int page_mask = (1 << a.page_shift) - 1;
  auto lookup = [&](int tile) {
    const int key = kbeg + tile * N + ld_row;
    return key < kend ? __ldg(bt + (key >> a.page_shift)) : -1;
  };
  auto issue = [&](int tile, int stage, int pg) {
    const int key = kbeg + tile * N + ld_row;
    const bool ok = pg >= 0;  // false past kend: zero fill (and masked)
    const int64_t row = ok ? (static_cast<int64_t>(pg) << a.page_shift) + (key & page_mask) : 0;
    if constexpr (!kFp8) {
      const T* src = static_cast<const T*>(a.pages) + row * kMlaRow;
      const uint32_t dst = s_kv + stage * kTileBytes;
#pragma unroll
      for (int i = 0; i < kRowBytes / 16 / 8; ++i) {
        const int c = ld_sub + 8 * i;
        cpAsync16(dst + swzRow(ld_row, c), src + c * 8, ok);
      }
    } else {
      const uint8_t* src = static_cast<const uint8_t*>(a.pages) + row * kMlaRow;
      const uint32_t dst = s_stage8 + stage * kTile8Bytes + ld_row * kMlaRow;
#pragma unroll
      for (int i = 0; i < (kMlaRow / 16 + 7) / 8; ++i) {
        const int c = ld_sub + 8 * i;
        if (c < kMlaRow / 16) cpAsync16(dst + c * 16, src + c * 16, ok);
      }
      if (ld_sub == 0) cpAsync8(s_scale + stage * kScaleBytes + ld_row * 8, a.scales + row * 2, ok);
    }
  };

  // Prologue: tiles 0 .. stages-2, one commit group each (Q rides in the first).
  for (int st = 0; st < stages - 1; ++st) {
    if (st < ntiles) issue(st, st, lookup(st));
    cpAsyncCommit();
  }
  int pg_next = stages - 1 < ntiles ? lookup(stages - 1) : -1;

  // S-phase role: rows wm * 16 .. +15, keys wn * kKeysPerWarp .. of each tile.
  const bool s_warp = warp < Cfg::kSWarps;
  const int wm = warp / Cfg::kWarpsN, wn = warp % Cfg::kWarpsN;
  const int g = lane >> 2, t4 = lane & 3;
  int rloc[2], row_hi[2];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    rloc[rr] = wm * 16 + g + rr * 8;
    row_hi[rr] = (s_warp && rloc[rr] < mrows) ? min(rowHi(rloc[rr]), kend) : 0;
  }
  float m_run[2] = {kNegInf, kNegInf};
  float l_run[2] = {0.0f, 0.0f};

  float o_acc[Cfg::kMT][8][4];
#pragma unroll
  for (int mt = 0; mt < Cfg::kMT; ++mt)
#pragma unroll
    for (int n = 0; n < 8; ++n) o_acc[mt][n][0] = o_acc[mt][n][1] = o_acc[mt][n][2] = o_acc[mt][n][3] = 0.0f;

  // ldmatrix lane addressing (fragment layouts of mma.m16n8k16).
  const int a_lrow = (lane & 7) + ((lane >> 3) & 1) * 8, a_lchunk = lane >> 4;  // A operands (Q, P)
  const int k_lrow = Cfg::kNT == 2 ? wn * 16 + (lane & 7) + (lane >> 4) * 8 : wn * 8 + (lane & 7);
  const int k_lchunk = Cfg::kNT == 2 ? (lane >> 3) & 1 : lane >> 3;
  const int v_lrow = (lane & 7) + ((lane >> 3) & 1) * 8, v_lchunk = lane >> 4;

  StageRing ring(stages);
  for (int it = 0; it < ntiles; ++it) {
    cpAsyncWaitDyn(stages - 2);
    __syncthreads();  // B1: tile `it` landed; every warp is done with tile it-1 (and its buffers)
    {
      const int nt = it + stages - 1;
      if (nt < ntiles) issue(nt, ring.write, pg_next);
      cpAsyncCommit();
      if (nt + 1 < ntiles) pg_next = lookup(nt + 1);
    }
    const int cur = ring.read;
    ring.advance();
    const int ts = kbeg + it * N;

    uint32_t s_tile = s_kv + cur * kTileBytes;
    if constexpr (kFp8) {
      s_tile = s_kv;
      const uint32_t src = s_stage8 + cur * kTile8Bytes + ld_row * kMlaRow;
#pragma unroll
      for (int i = 0; i < (kMlaRow / 16 + 7) / 8; ++i) {
        const int c = ld_sub + 8 * i;
        if (c < kMlaRow / 16) {
          const uint4 raw = ldShared128(src + c * 16);
          const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
          uint32_t o[8];
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            o[2 * k] = fp8x2ToBf16x2(w[k]);
            o[2 * k + 1] = fp8x2ToBf16x2(w[k] >> 16);
          }
          stShared128(s_tile + swzRow(ld_row, 2 * c), o[0], o[1], o[2], o[3]);
          stShared128(s_tile + swzRow(ld_row, 2 * c + 1), o[4], o[5], o[6], o[7]);
        }
      }
      __syncthreads();  // B1b: the bf16 tile is complete
    }

    float s[Cfg::kNT][4];
    float x_fp8[Cfg::kNT][2];  // fp8: the latent scale of the thread's two key columns per n-tile
    if (s_warp) {
      // Two accumulators per part: the two n-tiles (kNT == 2), or even and odd k-steps of the one
      // n-tile (kNT == 1), so that no single MMA dependency chain runs over all 36 k-steps.
      float sl[2][4], sr[2][4];
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) sl[i][e] = sr[i][e] = 0.0f;
      // Two k-steps (32 columns) of S into acc.
      auto kstep = [&](float(&acc)[2][4], int ks) {
        uint32_t qa0[4], qa1[4];
        ldmatrixX4(qa0, s_q + swzRow(wm * 16 + a_lrow, 2 * ks + a_lchunk));
        ldmatrixX4(qa1, s_q + swzRow(wm * 16 + a_lrow, 2 * ks + 2 + a_lchunk));
        if constexpr (Cfg::kNT == 2) {
          uint32_t kb0[4], kb1[4];
          ldmatrixX4(kb0, s_tile + swzRow(k_lrow, 2 * ks + k_lchunk));
          ldmatrixX4(kb1, s_tile + swzRow(k_lrow, 2 * ks + 2 + k_lchunk));
          mma16816<T>(acc[0], qa0, kb0[0], kb0[1]);
          mma16816<T>(acc[1], qa0, kb0[2], kb0[3]);
          mma16816<T>(acc[0], qa1, kb1[0], kb1[1]);
          mma16816<T>(acc[1], qa1, kb1[2], kb1[3]);
        } else {
          uint32_t kb[4];  // chunks 2ks .. 2ks+3 of 8 keys: two k-steps
          ldmatrixX4(kb, s_tile + swzRow(k_lrow, 2 * ks + k_lchunk));
          mma16816<T>(acc[0], qa0, kb[0], kb[1]);
          mma16816<T>(acc[1], qa1, kb[2], kb[3]);
        }
      };
#pragma unroll
      for (int ks = 0; ks < Cfg::kLatentSteps; ks += 2) kstep(sl, ks);
      // The rope columns get their own accumulator for fp8 (their own scale).
#pragma unroll
      for (int ks = Cfg::kLatentSteps; ks < Cfg::kKSteps; ks += 2) {
        if constexpr (kFp8) kstep(sr, ks);
        else kstep(sl, ks);
      }
      if constexpr (Cfg::kNT == 1) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          sl[0][e] += sl[1][e];
          sr[0][e] += sr[1][e];
        }
      }
      // Scores in log2 units, softcap, mask; the warp's row max.
      float mx[2] = {kNegInf, kNegInf};
#pragma unroll
      for (int nt = 0; nt < Cfg::kNT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int rr = e >> 1;
          const int kl = wn * Cfg::kKeysPerWarp + nt * 8 + 2 * t4 + (e & 1);
          float raw = sl[nt][e];
          if constexpr (kFp8) {
            const float sc_lat = ldSharedF32(s_scale + cur * kScaleBytes + kl * 8);
            const float sc_rope = ldSharedF32(s_scale + cur * kScaleBytes + kl * 8 + 4);
            raw = raw * sc_lat + sr[nt][e] * sc_rope;
            if (rr == 0) x_fp8[nt][e & 1] = sc_lat;
          }
          float x = a.has_softcap ? a.softcap_log2 * tanhAccurate(raw * a.softcap_scale) : raw * a.scale_log2;
          if (ts + kl >= row_hi[rr]) x = kNegInf;
          s[nt][e] = x;
          mx[rr] = fmaxf(mx[rr], x);
        }
      }
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 1));
        mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 2));
        if (t4 == 0) s_max[wn * M + rloc[rr]] = mx[rr];
      }
    }
    __syncthreads();  // B2: every S warp's row max is in shared memory

    if (s_warp) {
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        float mt = kNegInf;
#pragma unroll
        for (int w = 0; w < Cfg::kWarpsN; ++w) mt = fmaxf(mt, s_max[w * M + rloc[rr]]);
        const float m_new = fmaxf(m_run[rr], mt);
        const float m_use = m_new == kNegInf ? 0.0f : m_new;  // all masked so far: keep exp2 finite
        const float alpha = exp2f(m_run[rr] - m_use);         // m_run == -inf -> 0
        m_run[rr] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < Cfg::kNT; ++nt) {
          const float p0 = exp2f(s[nt][2 * rr] - m_use);  // -inf -> 0
          const float p1 = exp2f(s[nt][2 * rr + 1] - m_use);
          sum += p0 + p1;
          float v0 = p0, v1 = p1;
          if constexpr (kFp8) {
            v0 *= x_fp8[nt][0];  // values = scale_latent * e4m3 latent: fold the scale into P
            v1 *= x_fp8[nt][1];
          }
          const int kl = wn * Cfg::kKeysPerWarp + nt * 8 + 2 * t4;
          stShared32(s_p + swzP(rloc[rr], kl >> 3) + (kl & 7) * 2, ElemTraits<T>::pack(v0, v1));
        }
        l_run[rr] = l_run[rr] * alpha + sum;
        if (wn == 0 && t4 == 0) s_alpha[rloc[rr]] = alpha;
      }
    }
    __syncthreads();  // B3: P and alpha of every row are in shared memory

    // O[:, 64 warp ..] = alpha * O + P V.
#pragma unroll
    for (int mt = 0; mt < Cfg::kMT; ++mt) {
      const float a_lo = s_alpha[mt * 16 + g], a_hi = s_alpha[mt * 16 + g + 8];
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        o_acc[mt][n][0] *= a_lo;
        o_acc[mt][n][1] *= a_lo;
        o_acc[mt][n][2] *= a_hi;
        o_acc[mt][n][3] *= a_hi;
      }
    }
#pragma unroll
    for (int kk = 0; kk < N / 16; ++kk) {
      uint32_t pa[Cfg::kMT][4];
#pragma unroll
      for (int mt = 0; mt < Cfg::kMT; ++mt) ldmatrixX4(pa[mt], s_p + swzP(mt * 16 + a_lrow, 2 * kk + a_lchunk));
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t vb[4];
        ldmatrixX4Trans(vb, s_tile + swzRow(kk * 16 + v_lrow, warp * 8 + 2 * np + v_lchunk));
#pragma unroll
        for (int mt = 0; mt < Cfg::kMT; ++mt) {
          mma16816<T>(o_acc[mt][2 * np], pa[mt], vb[0], vb[1]);
          mma16816<T>(o_acc[mt][2 * np + 1], pa[mt], vb[2], vb[3]);
        }
      }
    }
  }

  // Epilogue: row sums over the S warps, then every warp writes its 64 columns.
  cpAsyncWait<0>();
  if (s_warp) {
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float l = l_run[rr];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      if (t4 == 0) {
        s_l[wn * M + rloc[rr]] = l;
        if (wn == 0) s_mrow[rloc[rr]] = m_run[rr];
      }
    }
  }
  __syncthreads();

#pragma unroll
  for (int mt = 0; mt < Cfg::kMT; ++mt) {
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int r = mt * 16 + g + rr * 8;
      if (r >= mrows) continue;
      float L = 0.0f;
#pragma unroll
      for (int w = 0; w < Cfg::kWarpsN; ++w) L += s_l[w * M + r];
      const int m = m0 + r, qi = m / a.heads, h = m - qi * a.heads;
      storeMlaRow<T, 8>(a, split, q0 + qi, h, warp * Cfg::kCols + 2 * t4, L, s_mrow[r], warp == 0 && t4 == 0,
                        [&](int n, int e) { return o_acc[mt][n][2 * rr + e]; });
    }
  }
}

template <int M, bool kFp8>
void launchDecode(const MlaArgs& a, unsigned grid_x, cudaStream_t stream) {
  auto kernel = mlaDecodeKernel<M, kFp8>;
  const int smem = smemBytes(M, kFp8, a.stages);
  if (smem > 48 * 1024) ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kernel<<<dim3(grid_x, static_cast<unsigned>(a.num_splits)), kThreads, smem, stream>>>(a);
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda::mla
