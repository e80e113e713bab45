// The Hopper (sm_90a) MLA decode / prefill kernel: bf16 cache, M = 64 rows per CTA. Shape and
// shared-memory plan in decode_sm90.h; semantics (masks, softcap, lse, splits) as decode_kernel.cuh.
//
// Per consumer warpgroup w and tile t (steady state):
//   wait P_{t-1} V_{t-1}; release the stage of tile t-1: the producer refills it with tile t+1
//   while S_t (issued at the end of tile t-1, behind that P V) still runs; wait S_t;
//   scores (scale, softcap, masks) and row maxima of the warpgroup's 32 keys -> shared; barrier EX;
//   m = max(m, both maxima), P_w = exp2(S_w - m), alpha = exp2(m_old - m); P_w (bf16) -> shared;
//   the last tile of a split: zero the rows past its end in the warpgroup's V chunks (they may be
//   unwritten page slots: 0 * NaN would poison O); barrier PREADY;
//   O *= alpha (skipped where alpha is 1 for the whole warp); issue O += P V (P from shared, both
//   halves), then S_{t+1} (its k loop waits on each 64-column chunk of tile t+1 as it lands, while
//   P V_t runs).
// EX also proves that the other warpgroup finished P V_{t-1} (it waited for it before arriving), so
// P_t may overwrite P_{t-1}; PREADY proves the other one read the maxima of tile t.
// Fragment conventions are those of flash_fwd_sm90.cuh: accumulators per warp in the m16n8k16 C
// layout along N (rows 16 warp + g, + 8; columns 8 j + 2 t, + 1), P packed as the m16n8k16 A
// fragment for wgmmaRS, V read MN-major, tiles in TMA's 128-byte-swizzled 64-column chunks.
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../common/ptx.cuh"
#include "../hopper/hopper_ptx.cuh"
#include "../hopper/wgmma_ops.cuh"
#include "cta_range.cuh"
#include "decode_sm90.h"
#include "row_output.cuh"

namespace attn::cuda::mla::sm90 {

struct KernelArgs {
  MlaArgs a;
  CUtensorMap kv;  // 3-D {576, kv rows, 1}, box {64, box_rows, 1}, 128-byte swizzle
  int box_rows;    // rows per TMA copy: min(page_size, 64), one page piece
  int oob_row;     // a row past the map's extent: TMA fills its box with zeros
};

// Byte offset of the 16-byte unit `unit` (0..7) of row r in a 128-byte-swizzled chunk (1024-byte
// aligned): TMA's CU_TENSOR_MAP_SWIZZLE_128B, address bits [4, 7) ^= bits [7, 10).
__device__ __forceinline__ uint32_t swz128(int r, int unit) { return static_cast<uint32_t>(r * 128 + ((unit ^ (r & 7)) << 4)); }

// Named barriers (0 is __syncthreads): both consumer warpgroups (256 threads).
constexpr int kBarQ = 1, kBarEx = 2, kBarPReady = 3;

__global__ void __launch_bounds__(kThreads, 1) mlaDecodeSm90Kernel(const __grid_constant__ KernelArgs args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace hopper;
  using T = __nv_bfloat16;
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  const MlaArgs& a = args.a;

  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t raw_base = smemAddr(smem);
  const uint32_t base = (raw_base + 1023) & ~1023u;  // swizzle atoms need 1024-byte alignment
  const uint32_t sQ = base;
  const uint32_t sKV = base + kOffKV;
  const uint32_t sP = base + kOffP;
  float* s_max = reinterpret_cast<float*>(smem + (base - raw_base) + kOffMax);  // [2][64]
  float* s_sum = reinterpret_cast<float*>(smem + (base - raw_base) + kOffSum);  // [2][64]
  const auto barFull = [&](int s, int c) { return base + kOffBar + 8 * (s * kChunks + c); };
  const auto barEmpty = [&](int s) { return base + kOffBar + 8 * (kStages * kChunks + s); };

  if (a.num_splits > 1) launchDependents();

  const int tid = threadIdx.x;
  MlaCta cta;
  if (!mlaCtaOf<64, kTileKeys>(a, cta)) return;  // uniform over the CTA, before any barrier
  const int b = cta.b, split = cta.split, q0 = cta.q0, m0 = cta.m0, mrows = cta.mrows;
  const int kbeg = cta.kbeg, kend = cta.kend, ntiles = cta.ntiles;
  auto rowHi = [&](int r) { return cta.rowHi(a, r); };

  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      for (int c = 0; c < kChunks; ++c) mbarInit(barFull(s, c), 1);
      mbarInit(barEmpty(s), 8);  // one arrival per consumer warp
    }
    fenceBarrierInit();
  }
  __syncthreads();

  const int wg = tid / 128;
  if (wg == 0) {
    // ---- producer: one thread, tile t into stage t % 2, chunk by chunk ----
    setMaxRegsDec<40>();
    if (tid == 0 && ntiles > 0) {
      prefetchTensorMap(&args.kv);
      const int table_row = a.block_table_rows != nullptr ? __ldg(a.block_table_rows + b) : b;
      const int32_t* bt = a.block_table + static_cast<int64_t>(table_row) * a.block_table_stride;
      const int box_rows = args.box_rows;
      const int pieces = kTileKeys / box_rows;  // 1, 2 or 4 (page size 64+, 32, 16)
      const int page_mask = (1 << a.page_shift) - 1;
      for (int it = 0; it < ntiles; ++it) {
        const int s = it & 1;
        if (it >= kStages) mbarWait(barEmpty(s), ((it >> 1) - 1) & 1);
        // Pool row of each piece; pieces wholly past the split's end read zeros (past the map).
        int rows[4];
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          const int key = kbeg + it * kTileKeys + p * box_rows;
          rows[p] = (p < pieces && key < kend) ? (__ldg(bt + (key >> a.page_shift)) << a.page_shift) + (key & page_mask) : args.oob_row;
        }
        const uint32_t dst = sKV + s * kTileBytes;
        for (int c = 0; c < kChunks; ++c) {
          mbarArriveExpectTx(barFull(s, c), kChunkBytes);  // every piece counts its full box
#pragma unroll
          for (int p = 0; p < 4; ++p)
            if (p < pieces) tmaLoad3d(dst + c * kChunkBytes + p * box_rows * 128, &args.kv, barFull(s, c), c * 64, rows[p], 0);
        }
      }
    }
  } else {
    // ---- consumers ----
    setMaxRegsInc<232>();
    const int cw = wg - 1;         // O columns [256 cw, +256), S keys [32 cw, +32) of each tile
    const int ctid = tid - 128;    // 0..255 over both consumers
    const int wtid = ctid & 127;   // in this warpgroup
    const int warp = wtid >> 5;
    const int lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;

    // Q -> shared in the swizzled chunk layout TMA would write; rows past mrows are zero.
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
        cpAsync16(sQ + (c16 >> 3) * kChunkBytes + swz128(r, c16 & 7), src, valid);
      }
      cpAsyncCommit();
      cpAsyncWait<0>();
      fenceProxyAsync();  // cp.async wrote through the generic proxy; wgmma reads through the async one
    }

    int rloc[2], row_hi[2];
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      rloc[rr] = warp * 16 + g + rr * 8;
      row_hi[rr] = rloc[rr] < mrows ? min(rowHi(rloc[rr]), kend) : 0;
    }
    float m_run[2] = {kNegInf, kNegInf};
    float l_run[2] = {0.0f, 0.0f};  // this thread's partial row sums (quad-reduced at the end)
    float alpha[2] = {0.0f, 0.0f};
    float o[128];
#pragma unroll
    for (int i = 0; i < 128; ++i) o[i] = 0.0f;
    float s[16];         // S (then P, f32) of the warpgroup's 32 keys: n8 tile j = s[4 j .. 4 j + 3]

    namedBarrierSync(kBarQ, 256);  // Q complete (both consumers loaded parts of it)

    const auto issueS = [&](int it) {
      const uint32_t parity = (it >> 1) & 1;
      // Opaque bases plus immediate steps: the issue of these 36 small wgmmas is on the critical path
      // (run 33: 4-8% faster), and the 36 Q descriptors are not hoisted into 72 registers.
      const uint64_t dq = opaqueDesc(smemDesc(sQ, 16, 1024));
      const uint64_t dk = opaqueDesc(smemDesc(sKV + (it & 1) * kTileBytes + cw * 32 * 128, 16, 1024));  // keys [32 cw, +32)
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        mbarWait(barFull(it & 1, c), parity);
        wgmmaFence();  // after the (divergent) wait, as CUTLASS's mainloops do: no compiler-injected one
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const uint32_t step = c * kChunkBytes + k * 32;
          wgmmaSS<T, 32>(s, descStep(dq, step), descStep(dk, step), (c | k) != 0 ? 1 : 0);
        }
      }
      wgmmaCommit();
    };
    const auto issuePV = [&](int it) {
      const uint64_t dp = opaqueDesc(smemDesc(sP, 16, 1024));
      const uint64_t dv = opaqueDesc(smemDesc(sKV + (it & 1) * kTileBytes + 4 * cw * kChunkBytes, kChunkBytes, 1024));  // latent columns [256 cw, +256)
      fenceRegs(o);
      wgmmaFence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {  // keys [16 kk, +16) of the tile
        // P from shared memory for every k step, own half included: one instruction form for both
        // warpgroups, so no branch separates the wgmmas (ptxas serializes those).
        wgmmaSST<T, 256>(o, descStep(dp, kk * 32), descStep(dv, kk * 16 * 128), 1);
      }
      wgmmaCommit();
    };

    // Scores of tile `it` (in s) -> P (f32, in s), alpha, row sums; P (bf16) to shared; zero tail.
    const auto softmaxTile = [&](int it) {
      const int ts = kbeg + it * kTileKeys;
      float mx[2] = {kNegInf, kNegInf};
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int rr = e >> 1;
          const int kl = cw * 32 + j * 8 + 2 * t + (e & 1);
          const float raw = s[4 * j + e];
          float x = a.has_softcap ? a.softcap_log2 * tanhAccurate(raw * a.softcap_scale) : raw * a.scale_log2;
          if (ts + kl >= row_hi[rr]) x = kNegInf;  // a select: NaN scores of unwritten slots vanish too
          s[4 * j + e] = x;
          mx[rr] = fmaxf(mx[rr], x);
        }
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 1));
        mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 2));
        if (t == 0) s_max[cw * 64 + rloc[rr]] = mx[rr];
      }
      namedBarrierSync(kBarEx, 256);
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        // Both warpgroups compute the same m (fmaxf is exact and commutative).
        const float m_new = fmaxf(m_run[rr], fmaxf(mx[rr], s_max[(1 - cw) * 64 + rloc[rr]]));
        const float m_use = m_new == kNegInf ? 0.0f : m_new;  // all masked so far: keep exp2 finite
        alpha[rr] = exp2f(m_run[rr] - m_use);                 // m_run == -inf -> 0
        m_run[rr] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float p = exp2f(s[4 * j + 2 * rr + e] - m_use);  // -inf -> 0
            s[4 * j + 2 * rr + e] = p;
            sum += p;
          }
        l_run[rr] = l_run[rr] * alpha[rr] + sum;
      }
      // P (bf16): own columns [32 cw, +32) of the [64 x 64] K-major tile both warpgroups read.
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int rr = 0; rr < 2; ++rr)
          stShared32(sP + swz128(rloc[rr], 4 * cw + j) + 4 * t, ElemTraits<T>::pack(s[4 * j + 2 * rr], s[4 * j + 2 * rr + 1]));
      // The split's last tile: rows past kend of this warpgroup's V chunks -> 0 (the other
      // warpgroup's S of this tile is done: it arrived at EX after waiting for it).
      const int nvalid = kend - ts;
      if (nvalid < kTileKeys) {
        const uint32_t v_base = sKV + (it & 1) * kTileBytes + 4 * cw * kChunkBytes;
        for (int u = wtid; u < (kTileKeys - nvalid) * 32; u += 128) {
          const int r = nvalid + (u >> 5), c = (u >> 3) & 3, unit = u & 7;
          stShared128(v_base + c * kChunkBytes + r * 128 + unit * 16, make_uint4(0u, 0u, 0u, 0u));
        }
      }
      fenceProxyAsync();
      namedBarrierSync(kBarPReady, 256);
    };

    if (ntiles > 0) {
      fenceRegs(o);  // pins O's zeroing here: moved past issueS(0), it would serialize the wgmmas
      issueS(0);
      for (int it = 0; it < ntiles; ++it) {
        // P V_{it-1} and S_it are separate commit groups, completed in order: the stage of tile it-1
        // is released as soon as P V_{it-1} is done, so the refill (tile it+1) also runs under S_it.
        wgmmaWait<1>();
        fenceRegs(o);
        if (it > 0) {
          __syncwarp();
          if (lane == 0) mbarArrive(barEmpty((it - 1) & 1));  // P V_{it-1} no longer reads its stage
        }
        wgmmaWait<0>();  // S_it
        fenceRegs(s);
        fenceRegs(o);
        softmaxTile(it);
        // Once a row's maximum settles its alpha is exactly 1: skip the 128 multiplies (the tensor
        // cores idle through this phase) where it is 1 for every row of the warp.
        if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
          for (int i = 0; i < 128; ++i) o[i] *= alpha[(i >> 1) & 1];
        }
        issuePV(it);
        if (it + 1 < ntiles) issueS(it + 1);
      }
      wgmmaWait<0>();
      fenceRegs(o);
    }

    // Epilogue: row sums of both consumers, then each writes its 256 columns (and consumer 0 the lse).
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
