// The Hopper (sm_90a) dense forward: TMA loads, wgmma, warp specialization.
//
// A CTA computes kBlockM = 64 x kConsumers query rows of one (sequence, head) with a producer and
// kConsumers (2; 3 for dense d64) consumer warpgroups:
//   warpgroup 0 (producer, registers cut to 24): one thread issues the TMA copies, Q once, then
//     K_j and V_j of every visited key block into a kStages-deep ring, each stage guarded by
//     full (TMA bytes landed) and empty (all consumers done reading) mbarriers;
//   warpgroups 1 .. kConsumers (registers raised to 240 with two, 160 with three): rows
//     [64 w, 64 w + 64) each.
//     S = Q K_j^T is one batch of wgmma (A = Q, B = K, both from shared memory); the score pipeline
//     (softcap/ALiBi, masks, online softmax) runs on the accumulator in registers, shared with the
//     sm_80 kernel (../flash/fwd_common.cuh); P is repacked in registers as wgmma's A operand and
//     O += P V_j is a second batch (B = V read "transposed", MN-major).
// Overlap, as FlashAttention-3: within a warpgroup, S_{j+1} and P_j V_j are issued together and the
// softmax of S_{j+1} runs while P_j V_j is still on the tensor cores (O's rescale waits for it);
// between the consumers, a named-barrier handshake makes them take turns issuing, so one's softmax
// lines up with the others' matrix products ("ping-pong"; round robin with three).
// Tiles land in shared memory as TMA writes them with the 128-byte swizzle: per 64-column chunk,
// rows of 128 bytes; the wgmma descriptors (hopper_ptx.cuh) describe exactly that layout.
// Everything per call (masks, window, softcap, ALiBi, GQA, varlen, scale, lse) is runtime, as in
// the sm_80 kernel: instantiations stay at dtype x head dim.
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>

#include "../../common/attention_params.h"
#include "../check.h"
#include "../common/ptx.cuh"
#include "../flash/fwd_common.cuh"
#include "hopper_ptx.cuh"
#include "tensor_map.h"
#include "tile_store.cuh"
#include "wgmma_ops.cuh"

namespace attn::cuda::hopper {

using flash::FwdParams;

template <typename Elem_, int kHeadDim_, int kBlockN_, int kStages_, int kConsumers_ = 2>
struct Sm90Traits {
  using Elem = Elem_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kConsumers = kConsumers_;  // warpgroups of 64 query rows each, taking turns
  static constexpr int kBlockM = 64 * kConsumers;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kStages = kStages_;
  static constexpr int kThreads = 128 * (kConsumers + 1);
  // Register split after setmaxnreg: the producer keeps 24, the consumers share the rest in
  // setmaxnreg's steps of 8 (240 with two, 160 with three). The registers moved are only the CTA's
  // launch allocation (kThreads x the __launch_bounds__ cap), not the SM's 64K: a consumer share
  // that needs more makes setmaxnreg.inc wait forever (a persistent trial hung so: docs/perf.md runs 74-76).
  static constexpr int kLaunchRegs = 65536 / kThreads / 8 * 8;
  static constexpr int kProducerRegs = 24;
  static constexpr int kConsumerRegs = (kLaunchRegs * (kConsumers + 1) - kProducerRegs) / kConsumers / 8 * 8;
  static_assert(kProducerRegs + kConsumers * kConsumerRegs <= kLaunchRegs * (kConsumers + 1), "register split");
  // Whether the tile can walk a block-sparse mask: its rows are one mask row block and its key
  // blocks tile the mask's key blocks.
  static constexpr bool kWalksMasks = kBlockM == kSparseBlock && kSparseBlock % kBlockN == 0;
  static constexpr int kChunks = kHeadDim / 64;  // 128-byte column chunks (one TMA box each)
  static constexpr int kNT = kBlockN / 8;        // n8 tiles of S per warp
  static constexpr int kDT = kHeadDim / 8;       // n8 tiles of O per warp
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kKVBytes = kBlockN * kHeadDim * 2;
  static constexpr int kOffK = kQBytes;
  static constexpr int kOffV = kOffK + kStages * kKVBytes;
  static constexpr int kOffBar = kOffV + kStages * kKVBytes;
  static constexpr int kBars = 1 + 4 * kStages;  // Q; full K, full V, empty K, empty V per stage
  static constexpr int kSmemBytes = kOffBar + 8 * kBars + 1024;  // + room to align the base to 1024
  static_assert(kHeadDim % 64 == 0 && kBlockN % 16 == 0, "tile shape");
  static_assert(kConsumers == 2 || kConsumers == 3, "consumer warpgroups");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory");
};

struct Sm90Args {
  FwdParams p;
  CUtensorMap q, k, v;  // 4-D maps {head dim, rows, heads, batch}, box {64, tile rows, 1, 1}
};

template <typename T>
__global__ void __launch_bounds__(T::kThreads, 1) flashFwdSm90Kernel(const __grid_constant__ Sm90Args args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Elem = typename T::Elem;
  using namespace flash;
  constexpr int kBlockM = T::kBlockM;
  constexpr int kBlockN = T::kBlockN;
  constexpr int kStages = T::kStages;
  constexpr int kNT = T::kNT;
  constexpr int kDT = T::kDT;
  const FwdParams& p = args.p;

  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t sQ = (smemAddr(smem) + 1023) & ~1023u;  // swizzle atoms need 1024-byte alignment
  const uint32_t sK = sQ + T::kOffK;
  const uint32_t sV = sQ + T::kOffV;
  const uint32_t barQ = sQ + T::kOffBar;
  const KvRing<kStages> ring{barQ + 8};
  const auto barFullK = [&](int s) { return ring.fullK(s); };
  const auto barFullV = [&](int s) { return ring.fullV(s); };
  const auto barEmptyK = [&](int s) { return ring.emptyK(s); };
  const auto barEmptyV = [&](int s) { return ring.emptyV(s); };

  const int tid = threadIdx.x;
  int m_block, h, b;
  tileOfBlock(p.lpt_group, m_block, h, b);
  const SeqInfo seq = seqInfo(p, b);
  const int m0 = m_block * kBlockM;
  if (m0 >= seq.len_q) return;  // varlen: this sequence is shorter than the longest one
  const KeyBlocks kb = keyBlocks(p, m0, kBlockM, kBlockN, seq.len_q, seq.len_k);
  // Visited key blocks, from the last down: every block of [n_min, n_max), or with a block-sparse
  // mask the listed ones (the host sends sparse calls only to kWalksMasks tiles). Producer and
  // consumers walk the same sequence, each with its own cursor.
  // The producer issues Q's copy before the cursor's two dependent loads, so they do not delay it
  // (docs/perf.md, session 16: 1-2% at 10-50% density).
  SparseCursor<kBlockN> cursor;
  const bool sparse = p.block_col_idx != nullptr;
  const auto initCursor = [&]() {
    if constexpr (T::kWalksMasks) {
      if (sparse) cursor.init(p, b, h, m0);
    }
  };
  const auto nextBlock = [&](int n) {
    if constexpr (T::kWalksMasks) {
      if (sparse) return cursor.below(n, kb.n_min, kb.n_max);
    }
    return n - 1;
  };

  if (tid == 0) {
    mbarInit(barQ, 1);
    ring.init(T::kConsumers * 4);
    fenceBarrierInit();
  }
  __syncthreads();

  const int wg = tid / 128;
  if (wg == 0) {
    // ---- producer ----
    if (tid == 0) {
      prefetchTensorMap(&args.q);
      prefetchTensorMap(&args.k);
      prefetchTensorMap(&args.v);
      // Varlen maps are {dim, total rows, heads, 1}: a sequence starts at its cumulative offset.
      const int q_row = seq.q_start + m0;
      mbarArriveExpectTx(barQ, T::kQBytes);
#pragma unroll
      for (int c = 0; c < T::kChunks; ++c) tmaLoad4d(sQ + c * kBlockM * 128, &args.q, barQ, c * 64, q_row, h, seq.varlen ? 0 : b);
      initCursor();  // still before the register cut (24 registers), where it was before Q moved ahead of it
    }
    setMaxRegsDec<T::kProducerRegs>();
    if (tid == 0) {
      const int k_row0 = seq.k_start;
      const int bb = seq.varlen ? 0 : b;
      const int hk = h / p.kv_group;
      int it = 0;
      for (int n_block = nextBlock(kb.n_max); n_block >= kb.n_min; n_block = nextBlock(n_block), ++it) {
        const int s = it % kStages;
        const uint32_t free_parity = ((it / kStages) - 1) & 1;
        const int row = k_row0 + n_block * kBlockN;
        if (it >= kStages) mbarWait(barEmptyK(s), free_parity);
        mbarArriveExpectTx(barFullK(s), T::kKVBytes);
#pragma unroll
        for (int c = 0; c < T::kChunks; ++c)
          tmaLoad4d(sK + s * T::kKVBytes + c * kBlockN * 128, &args.k, barFullK(s), c * 64, row, hk, bb);
        if (it >= kStages) mbarWait(barEmptyV(s), free_parity);
        mbarArriveExpectTx(barFullV(s), T::kKVBytes);
#pragma unroll
        for (int c = 0; c < T::kChunks; ++c)
          tmaLoad4d(sV + s * T::kKVBytes + c * kBlockN * 128, &args.v, barFullV(s), c * 64, row, hk, bb);
      }
    }
  } else {
    // ---- consumers ----
    setMaxRegsInc<T::kConsumerRegs>();
    initCursor();
    const int cw = wg - 1;
    const int warp = (tid / 32) % 4;
    const int lane = tid & 31;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int row0 = cw * 64 + warp * 16;  // this warp's first row in the tile
    const int row_diag = m0 + row0 + g + kb.offset;
    const float mult = p.softmax_mult;

    float acc_o[1][kDT][4];
#pragma unroll
    for (int dt = 0; dt < kDT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[0][dt][e] = 0.0f;
    float row_max[1][2] = {{-INFINITY, -INFINITY}};
    float row_sum[1][2] = {{0.0f, 0.0f}};
    float(&o_flat)[kDT * 4] = *reinterpret_cast<float(*)[kDT * 4]>(&acc_o[0][0][0]);

    const uint32_t q_base = sQ + cw * 64 * 128;  // this warpgroup's 64 rows of every chunk
    float sc[1][kNT][4];
    float(&s_flat)[kNT * 4] = *reinterpret_cast<float(*)[kNT * 4]>(&sc[0][0][0]);
    uint32_t pa[kBlockN / 16][4];  // P of the block whose P V is next
    float corr[1][2];

    const auto issueS = [&](int s) {
      const uint64_t dq = opaqueDesc(smemDesc(q_base, 16, 1024));
      const uint64_t dk = opaqueDesc(smemDesc(sK + s * T::kKVBytes, 16, 1024));
      wgmmaFence();
#pragma unroll
      for (int ks = 0; ks < T::kHeadDim / 16; ++ks) {
        const uint32_t chunk = ks / 4, within = (ks % 4) * 32;
        wgmmaSS<Elem, kBlockN>(s_flat, descStep(dq, chunk * kBlockM * 128 + within), descStep(dk, chunk * kBlockN * 128 + within),
                               ks > 0 ? 1 : 0);
      }
      wgmmaCommit();
    };
    const auto issuePV = [&](int s) {
      const uint64_t dv = opaqueDesc(smemDesc(sV + s * T::kKVBytes, kBlockN * 128, 1024));
      fenceRegs(o_flat);
      wgmmaFence();
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        wgmmaRS<Elem, T::kHeadDim>(o_flat, pa[kk], descStep(dv, kk * 16 * 128), 1);
      }
      wgmmaCommit();
    };
    const auto release = [&](uint32_t bar) {
      __syncwarp();
      if (lane == 0) mbarArrive(bar);
    };
    // Scores of block n_block (in sc) -> probabilities; the O rescale factor goes to corr.
    const auto scoresToP = [&](int n_block) {
      const int n0 = n_block * kBlockN;
      if (p.transform) transformScores<1, kNT>(sc, p, h, row_diag, n0 + 2 * t);
      if (n_block >= kb.mask_right_from || n_block < kb.mask_left_below)
        maskScores<1, kNT>(sc, p, row_diag, n0, t, seq.len_k);
      softmaxStep<1, kNT>(sc, row_max, row_sum, corr, mult);
    };
    const auto packAll = [&]() {
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) packP<Elem>(pa[kk], sc, 0, kk);
    };
    // Round robin: warpgroup w issues only between bar.sync(kTurn + w) and its bar.arrive on the
    // next one's barrier; the last consumer opens consumer 0's first turn. All take (blocks + 1)
    // turns, and the last skips its last arrive so every barrier completes exactly as often as it
    // is waited on.
    constexpr int kLast = T::kConsumers - 1;
    constexpr int kTurn = 1 + T::kConsumers;  // ids 1 .. kConsumers: the epilogue's per-warpgroup barriers
    const auto turnBegin = [&]() { namedBarrierSync(kTurn + cw, 256); };
    const auto turnEnd = [&]() { namedBarrierArrive(kTurn + (cw == kLast ? 0 : cw + 1), 256); };

    mbarWait(barQ, 0);
    int n_block = nextBlock(kb.n_max);
    if (n_block >= kb.n_min) {
      if (cw == kLast) turnEnd();
      mbarWait(barFullK(0), 0);
      turnBegin();
      issueS(0);
      turnEnd();
      wgmmaWait<0>();
      fenceRegs(s_flat);
      release(barEmptyK(0));
      scoresToP(n_block);  // O is still 0: no rescale
      packAll();
      int it = 1;
      for (int n_next = nextBlock(n_block); n_next >= kb.n_min; n_next = nextBlock(n_block), ++it) {
        const int s = it % kStages, prev = (it - 1) % kStages;
        mbarWait(barFullK(s), (it / kStages) & 1);
        mbarWait(barFullV(prev), ((it - 1) / kStages) & 1);
        turnBegin();
        issueS(s);
        issuePV(prev);
        turnEnd();
        wgmmaWait<1>();  // S of n_next
        fenceRegs(s_flat);
        release(barEmptyK(s));
        scoresToP(n_next);
        wgmmaWait<0>();  // P V of n_block
        fenceRegs(o_flat);
        release(barEmptyV(prev));
        rescaleRows<1, kDT>(acc_o, corr);
        packAll();
        n_block = n_next;
      }
      const int last = (it - 1) % kStages;
      mbarWait(barFullV(last), ((it - 1) / kStages) & 1);
      turnBegin();
      issuePV(last);
      if (cw != kLast) turnEnd();
      wgmmaWait<0>();
      fenceRegs(o_flat);
    }

    // Epilogue: normalize and write lse; stage O through this warpgroup's own rows of the Q tile
    // (same swizzled layout) so the global stores are 16-byte rows.
    float* lse_row0 = lseRow0(p, seq, b, h, m0);
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float lse;
      const float inv = finishRow(row_max[0][hh], row_sum[0][hh], mult, &lse);
      const int r = row0 + g + 8 * hh;
      if (lse_row0 != nullptr && t == 0 && m0 + r < seq.len_q) lse_row0[r] = lse;
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        const uint32_t v = ElemTraits<Elem>::pack(acc_o[0][dt][2 * hh] * inv, acc_o[0][dt][2 * hh + 1] * inv);
        stShared32(stagedO<kBlockM>(sQ, r, dt, t), v);
      }
    }
    namedBarrierSync(1 + cw, 128);
    Elem* og = reinterpret_cast<Elem*>(p.o) + seq.rowOffset(p.o_batch_stride, p.o_row_stride, b) +
               h * p.o_head_stride;
    storeStagedRows<T::kHeadDim, kBlockM>(sQ, reinterpret_cast<uint16_t*>(og), p.o_row_stride, cw, tid - 128 * wg, m0, seq.len_q);
  }
#else
  __trap();  // only the sm_90a image has a body; the host never launches another (see below)
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

// ---- host launcher -------------------------------------------------------------------------

template <typename T>
bool sm90ImageLoaded() {
  static const bool loaded = sm90ImageOf(flashFwdSm90Kernel<T>);
  return loaded;
}

template <typename T>
void launchFlashFwdSm90(const AttnParams& a, cudaStream_t stream) {
  if (!sm90ImageLoaded<T>()) throwRange("this build of attn-cuda has no sm_90a kernels (rebuild with sm_90a in ATTN_CUDA_GENCODE)");
  if (a.block_col_idx != nullptr && !T::kWalksMasks) throwRange("internal: a block-sparse call reached a Hopper tile that cannot walk the mask");
  Sm90Args args;
  args.p = flash::makeFwdParams(a);
  const bool varlen = a.cu_seqlens_q != nullptr;
  const int batch = varlen ? 1 : a.batch;
  args.q = makeTileMap(a.q, a.head_dim, varlen ? a.total_q : a.seqlen_q, a.heads_q, batch, a.q_row_stride,
                       a.q_head_stride, a.q_batch_stride, T::kBlockM);
  args.k = makeTileMap(a.k, a.head_dim, varlen ? a.total_k : a.seqlen_k, a.heads_kv, batch, a.k_row_stride,
                       a.k_head_stride, a.k_batch_stride, T::kBlockN);
  args.v = makeTileMap(a.v, a.head_dim, varlen ? a.total_k : a.seqlen_k, a.heads_kv, batch, a.v_row_stride,
                       a.v_head_stride, a.v_batch_stride, T::kBlockN);
  const int num_m = (a.seqlen_q + T::kBlockM - 1) / T::kBlockM;
  args.p.lpt_group = flash::lptGroup(a, num_m, 1);
  auto kernel = flashFwdSm90Kernel<T>;
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
  kernel<<<dim3(num_m, a.heads_q, a.batch), T::kThreads, T::kSmemBytes, stream>>>(args);
  ATTN_CUDA_CHECK_LAUNCH();
}

template <template <typename> class Traits>
void launchFlashFwdSm90ForDtype(const AttnParams& p, cudaStream_t stream) {
  if (p.dtype == DType::F16) {
    launchFlashFwdSm90<Traits<__half>>(p, stream);
  } else {
    launchFlashFwdSm90<Traits<__nv_bfloat16>>(p, stream);
  }
}

}  // namespace attn::cuda::hopper
