// Paged attention (decode and paged prefill) over a quantized cache: fp8 e4m3 or int8 pages with
// one f32 scale per (token, kv head) for K and for V (rules in csrc/common/quant.h).
//
// The CTA shape and the math are those of decode_kernel.cuh (one CTA = (sequence, kv head, block of
// 16 (query row, head) pairs, split); 64-key tiles, 16 keys per warp; mma.sync m16n8k16 with fp32
// accumulators; per-warp online softmax merged at the end) but the 8-bit tiles go straight from
// shared memory into MMA fragments, converted in registers:
//   * Every warp loads, waits for and reads only its own 16 keys of each tile (cp.async into its
//     own ring of stages), so the warps never meet at a CTA barrier inside the loop.
//   * The MMAs run in f16 whatever q's dtype: e4m3 and int8 values are exact in f16 (e4m3 by the
//     hardware cvt, int8 by the 0x6400 exponent trick). q is scaled by one power of two per CTA
//     (max |q| lands in [128, 256)), so bf16 queries keep their bits and cannot overflow f16.
//   * S = Q K^T reads K rows as they are stored. The head dimension is a summation index, so Q and
//     K may be permuted alike: lane (g, t) owns channels 64 c + 16 t + [0, 16) of a key, which one
//     16-byte load brings in, and takes them as the k16 steps 4c..4c+3 of the MMA; Q's fragments
//     are read with the same permutation.
//   * O += P V needs V transposed (pairs of keys per register). Each lane loads its 4 keys' bytes
//     of channels 16 g + [0, 16) (the output channels are permuted instead, undone in the
//     epilogue), byte-permutes key pairs together and converts; the V scale multiplies V there
//     (f16, per key), so P stays in [0, 1] and the row sums use P itself.
//   * The K scale and the smoothing term q . k_smooth are folded into each score in fp32; K's
//     channel scales multiply q once per CTA, V's the output channels in the epilogue.
// f16 P V requires |v| < 65504, which f16 and bf16 models meet (documented on PagedKVCache).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <type_traits>

#include "../check.h"
#include "../common/fp8_convert.cuh"
#include "../common/ptx.cuh"
#include "../common/stage_ring.cuh"
#include "paged_internal.h"
#include "decode_common.cuh"
#include "decode_launch.cuh"

namespace attn::cuda::paged {

// 4-byte cp.async (through L1); valid = false writes zeros without reading src.
__device__ __forceinline__ void cpAsync4(uint32_t smem_addr, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr), "l"(src), "r"(valid ? 4 : 0) : "memory");
}

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

__device__ __forceinline__ uint2 ldShared64(uint32_t addr) {
  uint2 v;
  asm volatile("ld.shared.v2.b32 {%0,%1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "r"(addr) : "memory");
  return v;
}

// Four 8-bit values [x0, x1, x2, x3] (x0 the low byte) -> f16x2 (x0, x1) and (x2, x3), exactly.
template <bool kFp8>
__device__ __forceinline__ void widen4(uint32_t x, uint32_t& lo, uint32_t& hi) {
  if constexpr (kFp8) {
    lo = e4m3x2ToHalf2Bits(x);
    hi = e4m3x2ToHalf2Bits(x >> 16);
  } else {
    // x + 128 as the mantissa of f16 1024 (0x6400): 1152 + x exactly, minus 1152.
    const uint32_t u = x ^ 0x80808080u;
    const uint32_t l = prmt(u, 0x64646464u, 0x4140u);
    const uint32_t h = prmt(u, 0x64646464u, 0x4342u);
    const __half2 bias = __halves2half2(__ushort_as_half(0x6480), __ushort_as_half(0x6480));  // 1152
    const __half2 lh = __hsub2(*reinterpret_cast<const __half2*>(&l), bias);
    const __half2 hh = __hsub2(*reinterpret_cast<const __half2*>(&h), bias);
    lo = *reinterpret_cast<const uint32_t*>(&lh);
    hi = *reinterpret_cast<const uint32_t*>(&hh);
  }
}

__device__ __forceinline__ uint32_t hmul2u(uint32_t a, __half2 s) {
  const __half2 r = __hmul2(*reinterpret_cast<const __half2*>(&a), s);
  return *reinterpret_cast<const uint32_t*>(&r);
}

template <int D>
struct QuantDecodeCfg {
  static constexpr int kThreads = kDecodeThreads;
  static constexpr int kWarps = kDecodeWarps;
  static constexpr int kRows = kDecodeRows;
  static constexpr int kN = kDecodeTileKeys;  // keys per tile, 16 per warp
  static constexpr int kWarpKeys = kN / kWarps;
  static constexpr int kStages = decodeQuantStages(D);
  static constexpr int kMaxStages = decodeQuantMaxStages(D);
  static constexpr int kMinBlocks = decodeQuantCtasPerSm(D);
  static constexpr int kCombineBatch = splitCombineBatch(kMinBlocks);
  static constexpr int kWarpTile = kWarpKeys * D;          // bytes of K (or V) per warp and stage
  static constexpr int kWarpStage = 2 * kWarpTile + 2 * kWarpKeys * 4;  // K, V, their scales
  static constexpr int kQStride = D + 8;                    // halves per row of the Q tile
  static constexpr int kQBytes = kRows * kQStride * 2;
  static constexpr int kLdChunks = D / 16;                  // 16-byte chunks per 8-bit row
  static constexpr int kLdStep = 32 / kLdChunks;            // rows one warp pass covers
  static constexpr int kLdIters = kWarpKeys / kLdStep;      // rows per lane per tile (K and V each)
  static constexpr int kOStride = kDecodeOStride<D>;
  static constexpr bool kQInRegs = D <= 128;                // else Q fragments are re-read per tile
  static_assert(kWarps * kWarpKeys == kN && kWarpKeys == 16, "each warp takes 16 keys of a tile");
  static_assert(32 % kLdChunks == 0 && kWarpKeys % kLdStep == 0, "load mapping");
  static_assert(decodeQuantSmemBytes(D, kStages) == kQBytes + kStages * kWarps * kWarpStage, "smem layout");
  static_assert(kWarps * kRows * kOStride * 4 <= kStages * kWarps * kWarpStage, "epilogue buffer fits the stages");
  static_assert(kMaxStages - 2 <= 14, "cpAsyncWaitDyn covers stages - 2 <= 14");
  static_assert((kMaxStages - 1) * kWarpKeys * 4 <= kWarpStage, "prologue pages fit one warp stage");
};

// K tiles: 16-byte chunk c of row r, swizzled so the 8 lanes of a quarter-warp (rows r, r + 1,
// chunks 4 c' + t) hit distinct banks. V tiles: lanes read chunk g of rows 2 t (+ 1, 8, 9).
template <int D>
__device__ __forceinline__ int swzK(int r, int c) {
  return D >= 128 ? c ^ ((r & 1) << 2) : c;
}
template <int D>
__device__ __forceinline__ int swzV(int r, int c) {
  return D >= 128 ? c ^ (((r >> 1) & 3) << 1) : c;
}

template <typename T, int D, bool kFp8>
__global__ void __launch_bounds__(kDecodeThreads, QuantDecodeCfg<D>::kMinBlocks) pagedDecodeQuantKernel(const __grid_constant__ DecodeArgs a) {
  using Cfg = QuantDecodeCfg<D>;
  constexpr int kN = Cfg::kN;
  constexpr int kKS = D / 16;  // k16 steps of Q K^T
  constexpr int kNP = D / 8;   // n8 tiles of O
  const int stages = a.stages;  // >= 2

  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ float s_qmax[kDecodeWarps];
  __shared__ float s_qmu[kDecodeRows];

  // Launched with programmatic stream serialization: the CTAs start while the previous kernel on
  // the stream finishes, and wait here, before any global read, until its writes are visible.
  waitForPrerequisites();
  launchDependents();

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int g = lane >> 2;
  const int t4 = lane & 3;
  DecodeCta cta;
  if (!decodeCtaOf(a, cta)) return;  // uniform over the CTA
  const int kvh = cta.kvh, b = cta.b, q0 = cta.q0, m0 = cta.m0, mrows = cta.mrows;
  const int kbeg = cta.kbeg, kend = cta.kend, ntiles = cta.ntiles;

  // Shared memory: the f16 Q tile, then per stage and warp: K bytes, V bytes, K scales, V scales.
  const uint32_t s_base = smemAddr(smem);
  const uint32_t s_q = s_base;
  auto sWarp = [&](int stage) { return s_base + Cfg::kQBytes + (stage * Cfg::kWarps + warp) * Cfg::kWarpStage; };
  auto sScale = [&](int stage) {
    return reinterpret_cast<const float*>(smem + Cfg::kQBytes + (stage * Cfg::kWarps + warp) * Cfg::kWarpStage + 2 * Cfg::kWarpTile);
  };

  // ---- K/V loads: this warp's 16 keys of a tile. Lane: chunk lc of rows lr0 + i * kLdStep. ----
  const int lc = lane % Cfg::kLdChunks;
  const int lr0 = lane / Cfg::kLdChunks;
  const int wk0 = warp * Cfg::kWarpKeys;
  const uint8_t* kbase = static_cast<const uint8_t*>(a.k_pages) + static_cast<int64_t>(kvh) * a.page_head_stride + lc * 16;
  const uint8_t* vbase = static_cast<const uint8_t*>(a.v_pages) + static_cast<int64_t>(kvh) * a.page_head_stride + lc * 16;
  const int bt_row = decodeTableRow(a, b);
  const int32_t* bt = a.block_table + static_cast<int64_t>(bt_row) * a.block_table_stride;
  const int page_mask = (1 << a.page_shift) - 1;
  const bool wide_pages = a.page_shift >= 4;  // a warp's 16 keys (16-aligned) share one page
  const int sc_row = lane & 15;               // scale loads: lanes 0-15 K, 16-31 V
  const float* sc_src = lane < 16 ? a.k_scales : a.v_scales;

  // Pages of this warp's keys of a tile: [kLdIters] for the K/V rows, then the scale row.
  using Pages = int[Cfg::kLdIters + 1];
  auto pageOf = [&](int key) { return key < kend ? __ldg(bt + (key >> a.page_shift)) : -1; };
  auto lookup = [&](int tile, Pages& pg) {
    const int k0 = kbeg + tile * kN + wk0;
    if (wide_pages) {
      const int p = pageOf(k0);
#pragma unroll
      for (int i = 0; i <= Cfg::kLdIters; ++i) pg[i] = p;
    } else {
#pragma unroll
      for (int i = 0; i < Cfg::kLdIters; ++i) pg[i] = pageOf(k0 + lr0 + i * Cfg::kLdStep);
      pg[Cfg::kLdIters] = pageOf(k0 + sc_row);
    }
  };
  auto issue = [&](int tile, int stage, const Pages& pg) {
    const uint32_t dk = sWarp(stage), dv = dk + Cfg::kWarpTile;
    const int k0 = kbeg + tile * kN + wk0;
#pragma unroll
    for (int i = 0; i < Cfg::kLdIters; ++i) {
      const int row = lr0 + i * Cfg::kLdStep;
      const int key = k0 + row;
      const bool ok = pg[i] >= 0 && key < kend;
      const int64_t off = ok ? static_cast<int64_t>(pg[i]) * a.page_stride + static_cast<int64_t>(key & page_mask) * D : 0;
      cpAsync16(dk + row * D + swzK<D>(row, lc) * 16, kbase + off, ok);
      cpAsync16(dv + row * D + swzV<D>(row, lc) * 16, vbase + off, ok);
    }
    const int key = k0 + sc_row;
    const int p = pg[Cfg::kLdIters];
    const bool ok = p >= 0 && key < kend;
    const int64_t si = ok ? static_cast<int64_t>(p) * a.scale_page_stride + static_cast<int64_t>(kvh) * a.scale_head_stride + (key & page_mask) : 0;
    cpAsync4(dv + Cfg::kWarpTile + lane * 4, sc_src + si, ok);
  };

  // Prologue loads first (their latency overlaps the Q setup): every page of the first stages-1
  // tiles at once, parked in this warp's last stage (loaded only once the loop starts), then one
  // commit group per tile.
  Pages pg;
  {
    int* s_pg = reinterpret_cast<int*>(smem + Cfg::kQBytes + ((stages - 1) * Cfg::kWarps + warp) * Cfg::kWarpStage);
    const int tiles = min(stages - 1, ntiles);
    for (int e = lane; e < tiles * Cfg::kWarpKeys; e += 32) {
      const int key = kbeg + (e / Cfg::kWarpKeys) * kN + wk0 + (e % Cfg::kWarpKeys);
      s_pg[e] = pageOf(key);
    }
    __syncwarp();
    for (int st = 0; st < stages - 1; ++st) {
      if (st < ntiles) {
#pragma unroll
        for (int i = 0; i < Cfg::kLdIters; ++i) pg[i] = s_pg[st * Cfg::kWarpKeys + lr0 + i * Cfg::kLdStep];
        pg[Cfg::kLdIters] = s_pg[st * Cfg::kWarpKeys + sc_row];
        issue(st, st, pg);
      }
      cpAsyncCommit();
    }
  }
  if (stages - 1 < ntiles) lookup(stages - 1, pg);

  // ---- Q: times K's channel scales, then f16 scaled by a power of two; q . k_smooth per row. ----
  const float* k_chan = a.k_chan + static_cast<int64_t>(kvh) * D;
  {
    const T* q = static_cast<const T*>(a.q);
    float mx = 0.0f;
    for (int u = tid; u < kDecodeRows * D; u += Cfg::kThreads) {
      const int r = u / D, c = u % D;
      if (r < mrows) {
        const int m = m0 + r;
        const int qi = m / a.group, gq = m - qi * a.group;
        const float x = static_cast<float>(q[static_cast<int64_t>(q0 + qi) * a.q_row_stride + static_cast<int64_t>(kvh * a.group + gq) * a.q_head_stride + c]);
        mx = fmaxf(mx, fabsf(x * __ldg(k_chan + c)));
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (lane == 0) s_qmax[warp] = mx;
    // q . k_smooth: 8 lanes per row.
    const int r = tid >> 3, part = tid & 7;
    float acc = 0.0f;
    if (r < mrows) {
      const int m = m0 + r;
      const int qi = m / a.group, gq = m - qi * a.group;
      const T* qrow = q + static_cast<int64_t>(q0 + qi) * a.q_row_stride + static_cast<int64_t>(kvh * a.group + gq) * a.q_head_stride;
      const float* mu = a.k_smooth + static_cast<int64_t>(kvh) * D;
      for (int c = part; c < D; c += 8) acc = fmaf(static_cast<float>(qrow[c]), __ldg(mu + c), acc);
    }
    acc += __shfl_xor_sync(0xffffffffu, acc, 1);
    acc += __shfl_xor_sync(0xffffffffu, acc, 2);
    acc += __shfl_xor_sync(0xffffffffu, acc, 4);
    if (part == 0) s_qmu[r] = acc;
  }
  __syncthreads();
  float q_mul = 1.0f;  // power of two: max |q| * q_mul in [128, 256)
  {
    const float mx = fmaxf(fmaxf(s_qmax[0], s_qmax[1]), fmaxf(s_qmax[2], s_qmax[3]));
    if (mx > 0.0f && mx < INFINITY) {
      int e;
      frexpf(mx, &e);  // mx in [2^(e-1), 2^e)
      q_mul = ldexpf(1.0f, max(-100, min(100, 8 - e)));
    }
    const T* q = static_cast<const T*>(a.q);
    for (int u = tid; u < kDecodeRows * D / 2; u += Cfg::kThreads) {
      const int r = u / (D / 2), c = 2 * (u % (D / 2));
      float x0 = 0.0f, x1 = 0.0f;
      if (r < mrows) {
        const int m = m0 + r;
        const int qi = m / a.group, gq = m - qi * a.group;
        const T* src = q + static_cast<int64_t>(q0 + qi) * a.q_row_stride + static_cast<int64_t>(kvh * a.group + gq) * a.q_head_stride + c;
        x0 = static_cast<float>(src[0]) * __ldg(k_chan + c) * q_mul;
        x1 = static_cast<float>(src[1]) * __ldg(k_chan + c + 1) * q_mul;
      }
      stShared32(s_q + (r * Cfg::kQStride + c) * 2, ElemTraits<__half>::pack(x0, x1));
    }
  }
  __syncthreads();
  const float q_div = 1.0f / q_mul;  // exact (power of two)

  // Q's A fragments, permuted like K: k16 step ks = 4 c + j takes the channels
  // 64 c + 16 t + 4 j + {0, 1} (a0, a1) and + {2, 3} (a2, a3).
  auto qFrag = [&](int ks, uint32_t (&qa)[4]) {
    const int col = 64 * (ks / 4) + 16 * t4 + 4 * (ks % 4);
    const uint2 lo = ldShared64(s_q + (g * Cfg::kQStride + col) * 2);
    const uint2 hi = ldShared64(s_q + ((g + 8) * Cfg::kQStride + col) * 2);
    qa[0] = lo.x;
    qa[1] = hi.x;
    qa[2] = lo.y;
    qa[3] = hi.y;
  };
  uint32_t q_reg[Cfg::kQInRegs ? kKS : 1][4];
  if constexpr (Cfg::kQInRegs) {
#pragma unroll
    for (int ks = 0; ks < kKS; ++ks) qFrag(ks, q_reg[ks]);
  }

  const DecodeRows rows = decodeRowsOf(a, cta, g);
  const float row_qmu[2] = {s_qmu[g], s_qmu[g + 8]};

  float o_acc[kNP][4], m_run[2], l_run[2];
  initRows<kNP>(o_acc, m_run, l_run);

  StageRing ring(stages);
  for (int it = 0; it < ntiles; ++it) {
    cpAsyncWaitDyn(stages - 2);
    __syncwarp();  // this warp's tile `it` is in shared memory; its lanes are done with tile it-1
    {
      const int nt = it + stages - 1;
      if (nt < ntiles) issue(nt, ring.write, pg);
      cpAsyncCommit();
      if (nt + 1 < ntiles) lookup(nt + 1, pg);
    }
    const uint32_t sk = sWarp(ring.read), sv = sk + Cfg::kWarpTile;
    const float* sc = sScale(ring.read);
    ring.advance();
    const int ts = kbeg + it * kN;

    // S = Q K^T: key rows nt * 8 + g; 16 bytes per lane and row cover 4 k16 steps.
    float s[2][4];
#pragma unroll
    for (int i = 0; i < 2; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int c = 0; c < D / 64; ++c) {
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const int r = nt * 8 + g;
        const uint4 w = ldShared128(sk + r * D + swzK<D>(r, 4 * c + t4) * 16);
        const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          uint32_t b0, b1;
          widen4<kFp8>(words[j], b0, b1);
          if constexpr (Cfg::kQInRegs) {
            mma16816<__half>(s[nt], q_reg[4 * c + j], b0, b1);
          } else {
            uint32_t qa[4];
            qFrag(4 * c + j, qa);
            mma16816<__half>(s[nt], qa, b0, b1);
          }
        }
      }
    }

    // Raw scores: K scale, Q's power of two and the smoothing term back in; then as 16-bit scores.
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = fmaf(s[nt][e] * q_div, sc[nt * 8 + 2 * t4 + (e & 1)], row_qmu[e >> 1]);
    decodeScores(a, cta, rows, s, ts, wk0, t4);
    decodeSoftmax<kNP>(s, m_run, l_run, o_acc);

    uint32_t pa[4];
    pFragment<__half>(pa, s);

    // O += P V. Lane keys 2t, 2t+1 (b0) and 2t+8, 2t+9 (b1); channels 16 g + [0, 16) of each
    // 128-channel piece (8 g + [0, 8) for D = 64); n8 tile np = 16 piece + 4 j + byte.
    const int kr[4] = {2 * t4, 2 * t4 + 1, 2 * t4 + 8, 2 * t4 + 9};
    const float* vsc = sc + Cfg::kWarpKeys;
    const __half2 vs01 = __floats2half2_rn(vsc[kr[0]], vsc[kr[1]]);
    const __half2 vs23 = __floats2half2_rn(vsc[kr[2]], vsc[kr[3]]);
    // Four bytes of each key (channels 4 j' .. 4 j' + 3 of the lane's slice) -> n8 tiles np0 .. np0 + 3.
    const auto pv4 = [&](uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, auto np0) {
      uint32_t b0[4], b1[4];
      widen4<kFp8>(prmt(a0, a1, 0x5140u), b0[0], b0[1]);
      widen4<kFp8>(prmt(a0, a1, 0x7362u), b0[2], b0[3]);
      widen4<kFp8>(prmt(a2, a3, 0x5140u), b1[0], b1[1]);
      widen4<kFp8>(prmt(a2, a3, 0x7362u), b1[2], b1[3]);
#pragma unroll
      for (int e = 0; e < 4; ++e) mma16816<__half>(o_acc[decltype(np0)::value + e], pa, hmul2u(b0[e], vs01), hmul2u(b1[e], vs23));
    };
    if constexpr (D == 64) {
      uint2 w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) w[i] = ldShared64(sv + kr[i] * D + g * 8);
      pv4(w[0].x, w[1].x, w[2].x, w[3].x, std::integral_constant<int, 0>{});
      pv4(w[0].y, w[1].y, w[2].y, w[3].y, std::integral_constant<int, 4>{});
    } else {
      const auto piece = [&](auto pc) {
        constexpr int kPiece = decltype(pc)::value;
        uint4 w[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) w[i] = ldShared128(sv + kr[i] * D + swzV<D>(kr[i], g + 8 * kPiece) * 16);
        pv4(w[0].x, w[1].x, w[2].x, w[3].x, std::integral_constant<int, 16 * kPiece>{});
        pv4(w[0].y, w[1].y, w[2].y, w[3].y, std::integral_constant<int, 16 * kPiece + 4>{});
        pv4(w[0].z, w[1].z, w[2].z, w[3].z, std::integral_constant<int, 16 * kPiece + 8>{});
        pv4(w[0].w, w[1].w, w[2].w, w[3].w, std::integral_constant<int, 16 * kPiece + 12>{});
      };
      piece(std::integral_constant<int, 0>{});
      if constexpr (D == 256) piece(std::integral_constant<int, 1>{});
    }
  }

  // Epilogue; the output channels come back from the P V permutation: column n of n8 tile np is
  // channel 128 (np / 16) + 16 n + np % 16 (D = 64: 8 n + np).
  decodeEpilogue<T, D, Cfg::kCombineBatch>(a, cta, o_acc, m_run, l_run, reinterpret_cast<float*>(smem + Cfg::kQBytes),
                                           [](int np, int n) { return D == 64 ? 8 * n + np : 128 * (np / 16) + 16 * n + np % 16; },
                                           a.v_chan + static_cast<int64_t>(kvh) * D);
}

template <typename T, int D>
void launchPagedDecodeQuant(const DecodeArgs& a, cudaStream_t stream) {
  using Cfg = QuantDecodeCfg<D>;
  auto kernel = a.kv_fp8 ? pagedDecodeQuantKernel<T, D, true> : pagedDecodeQuantKernel<T, D, false>;
  launchDecodeGrid(kernel, a, Cfg::kStages, Cfg::kMaxStages, [](int st) { return decodeQuantSmemBytes(D, st); }, stream);
}

}  // namespace attn::cuda::paged
