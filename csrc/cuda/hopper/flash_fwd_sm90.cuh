// The Hopper (sm_90a) dense forward: TMA loads, wgmma, warp specialization.
//
// A CTA computes kBlockM = 128 query rows of one (sequence, head) with three warpgroups:
//   warpgroup 0 (producer, registers cut to 24): one thread issues the TMA copies, Q once, then
//     K_j and V_j of every visited key block into a kStages-deep ring, each stage guarded by
//     full (TMA bytes landed) and empty (both consumers done reading) mbarriers;
//   warpgroups 1 and 2 (consumers, registers raised to 240): rows [64 w, 64 w + 64) each.
//     S = Q K_j^T is one batch of wgmma (A = Q, B = K, both from shared memory); the score pipeline
//     (softcap/ALiBi, masks, online softmax) runs on the accumulator in registers, shared with the
//     sm_80 kernel (../flash/fwd_common.cuh); P is repacked in registers as wgmma's A operand and
//     O += P V_j is a second batch (B = V read "transposed", MN-major).
// Overlap, as FlashAttention-3: within a warpgroup, S_{j+1} and P_j V_j are issued together and the
// softmax of S_{j+1} runs while P_j V_j is still on the tensor cores (O's rescale waits for it);
// between the two warpgroups, a named-barrier handshake makes them take turns issuing, so one's
// softmax lines up with the other's matrix products ("ping-pong").
// Tiles land in shared memory as TMA writes them with the 128-byte swizzle: per 64-column chunk,
// rows of 128 bytes; the wgmma descriptors (hopper_ptx.cuh) describe exactly that layout.
// Everything per call (masks, window, softcap, ALiBi, GQA, varlen, scale, lse) is runtime, as in
// the sm_80 kernel: instantiations stay at dtype x head dim.
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

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

template <typename Elem_, int kHeadDim_, int kBlockN_, int kStages_>
struct Sm90Traits {
  using Elem = Elem_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = 128;  // two consumer warpgroups x 64 rows
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kStages = kStages_;
  static constexpr int kConsumers = 2;
  static constexpr int kThreads = 128 * (kConsumers + 1);
  static constexpr int kChunks = kHeadDim / 64;  // 128-byte column chunks (one TMA box each)
  static constexpr int kNT = kBlockN / 8;        // n8 tiles of S per warp
  static constexpr int kDT = kHeadDim / 8;       // n8 tiles of O per warp
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kKVBytes = kBlockN * kHeadDim * 2;
  static constexpr int kOffK = kQBytes;
  static constexpr int kOffV = kOffK + kStages * kKVBytes;
  static constexpr int kOffBar = kOffV + kStages * kKVBytes;
  static constexpr int kBars = 2 + 4 * kStages;  // Q; full K, full V, empty K, empty V per stage; Q empty
  static constexpr int kSmemBytes = kOffBar + 8 * kBars + 1024;  // + room to align the base to 1024
  static_assert(kHeadDim % 64 == 0 && kBlockN % 16 == 0, "tile shape");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory");
};

struct Sm90Args {
  FwdParams p;
  CUtensorMap q, k, v;  // 4-D maps {head dim, rows, heads, batch}, box {64, tile rows, 1, 1}
  // Persistent schedule only (block-sparse calls, see launchFlashFwdSm90): tiles are handed out
  // by `tile_counter` (zero at launch; the CTA that draws the last ticket resets it).
  unsigned* tile_counter;
  int num_m;      // query tiles per (sequence, head)
  int pairs;      // (sequence, head) pairs: heads * batch
  int num_tiles;  // num_m * pairs
};

// Tile `linear` of flash::tileOfBlock's launch order, for a schedule without a grid of tiles.
__device__ __forceinline__ void tileOfIndex(int linear, int num_m, int heads, int pairs, int group, int& m_block, int& h,
                                            int& b) {
  const int g = linear / (group * num_m);
  const int first_pair = g * group;
  const int size = min(group, pairs - first_pair);
  const int in_group = linear - first_pair * num_m;
  m_block = num_m - 1 - in_group / size;
  const int pair = first_pair + in_group % size;
  h = pair % heads;
  b = pair / heads;
}

// One query tile and its walk over key blocks, computed alike by the producer and the consumers.
template <int kBlockM, int kBlockN>
struct Sm90Tile {
  int h, b, m0;
  flash::SeqInfo seq;
  flash::KeyBlocks kb;
  flash::SparseCursor<kBlockN> cursor;  // block-sparse calls

  // False when the tile lies past its sequence's query rows (varlen).
  __device__ __forceinline__ bool init(const FwdParams& p, int m_block, int h_, int b_) {
    h = h_;
    b = b_;
    seq = flash::seqInfo(p, b);
    m0 = m_block * kBlockM;
    if (m0 >= seq.len_q) return false;
    kb = flash::keyBlocks(p, m0, kBlockM, kBlockN, seq.len_q, seq.len_k);
    // Visited key blocks, from the last down: every block of [n_min, n_max), or with a block-sparse
    // mask the listed ones (the host sends sparse calls here only when kBlockN divides the mask
    // block). Producer and consumers walk the same sequence, each with its own cursor.
    if constexpr (kSparseBlock % kBlockN == 0) {
      if (p.block_col_idx != nullptr) cursor.init(p, b, h, m0);
    }
    return true;
  }
  __device__ __forceinline__ int next(const FwdParams& p, int n) {
    if constexpr (kSparseBlock % kBlockN == 0) {
      if (p.block_col_idx != nullptr) return cursor.below(n, kb.n_min, kb.n_max);
    }
    return n - 1;
  }
};

// kPersistent = false: one CTA per query tile (the grid is the tiles). true: one CTA per SM takes
// tiles from a counter until none is left; the K/V ring runs on across tiles, Q is released after
// the tile's last S so the next tile's Q and first K/V land while this one finishes its last P V
// and its epilogue, and O goes to global memory straight from the accumulators. That hides the
// per-tile prologue and epilogue, which dominate when a block-sparse row visits few key blocks
// (on dense grids it measured slower: docs/perf.md run 15).
template <typename T, bool kPersistent>
__global__ void __launch_bounds__(T::kThreads, 1) flashFwdSm90Kernel(const __grid_constant__ Sm90Args args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Elem = typename T::Elem;
  using namespace flash;
  using Tile = Sm90Tile<T::kBlockM, T::kBlockN>;
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
  const uint32_t barQEmpty = barQ + 8 * (1 + 4 * kStages);  // persistent: every S of the tile done
  __shared__ int s_tile;  // persistent: the tile the producer loads next (-1: none left)

  const int tid = threadIdx.x;
  // Tile of the grid (one-tile CTAs); the persistent kernel takes its tiles in the loops below.
  Tile grid_tile;
  if constexpr (!kPersistent) {
    int m_block, h, b;
    tileOfBlock(p.lpt_group, m_block, h, b);
    if (!grid_tile.init(p, m_block, h, b)) return;
  }
  const auto tileAt = [&](int linear, Tile& tl) {
    int m_block, h, b;
    tileOfIndex(linear, args.num_m, p.heads_q, args.pairs, p.lpt_group, m_block, h, b);
    return tl.init(p, m_block, h, b);
  };

  if (tid == 0) {
    mbarInit(barQ, 1);
    if constexpr (kPersistent) mbarInit(barQEmpty, T::kConsumers * 4);  // one arrival per consumer warp
    ring.init(T::kConsumers * 4);
    fenceBarrierInit();
  }
  __syncthreads();

  const int wg = tid / 128;
  if (wg == 0) {
    // ---- producer ----
    setMaxRegsDec<24>();
    if (tid == 0) {
      prefetchTensorMap(&args.q);
      prefetchTensorMap(&args.k);
      prefetchTensorMap(&args.v);
      int it = 0;  // K/V blocks loaded so far (all tiles): ring stage and phase
      for (int q_iter = 0;; ++q_iter) {
        Tile tl;
        if constexpr (kPersistent) {
          // Draw tickets until a tile with query rows; the last ticket of the launch resets the counter.
          const unsigned last_ticket = static_cast<unsigned>(args.num_tiles) + gridDim.x - 1;
          int linear = -1;
          for (;;) {
            const unsigned ticket = atomicAdd(args.tile_counter, 1u);
            if (ticket >= static_cast<unsigned>(args.num_tiles)) {
              if (ticket == last_ticket) atomicExch(args.tile_counter, 0u);
              break;
            }
            if (tileAt(static_cast<int>(ticket), tl)) {
              linear = static_cast<int>(ticket);
              break;
            }
          }
          if (q_iter > 0) mbarWait(barQEmpty, (q_iter - 1) & 1);  // the consumers hold the previous tile
          s_tile = linear;
          if (linear < 0) {
            mbarArrive(barQ);  // completes the phase without bytes: the consumers read -1 and stop
            break;
          }
        } else {
          if (q_iter > 0) break;
          tl = grid_tile;
        }
        // Varlen maps are {dim, total rows, heads, 1}: a sequence starts at its cumulative offset.
        const int q_row = tl.seq.q_start + tl.m0;
        const int k_row0 = tl.seq.k_start;
        const int bb = tl.seq.varlen ? 0 : tl.b;
        const int hk = tl.h / p.kv_group;
        mbarArriveExpectTx(barQ, T::kQBytes);
#pragma unroll
        for (int c = 0; c < T::kChunks; ++c) tmaLoad4d(sQ + c * kBlockM * 128, &args.q, barQ, c * 64, q_row, tl.h, bb);
        for (int n_block = tl.next(p, tl.kb.n_max); n_block >= tl.kb.n_min; n_block = tl.next(p, n_block), ++it) {
          const int s = it % kStages;
          const uint32_t free_parity = ((it / kStages) - 1) & 1;
          const int row = k_row0 + n_block * kBlockN;
          if (it >= kStages) mbarWait(ring.emptyK(s), free_parity);
          mbarArriveExpectTx(ring.fullK(s), T::kKVBytes);
#pragma unroll
          for (int c = 0; c < T::kChunks; ++c)
            tmaLoad4d(sK + s * T::kKVBytes + c * kBlockN * 128, &args.k, ring.fullK(s), c * 64, row, hk, bb);
          if (it >= kStages) mbarWait(ring.emptyV(s), free_parity);
          mbarArriveExpectTx(ring.fullV(s), T::kKVBytes);
#pragma unroll
          for (int c = 0; c < T::kChunks; ++c)
            tmaLoad4d(sV + s * T::kKVBytes + c * kBlockN * 128, &args.v, ring.fullV(s), c * 64, row, hk, bb);
        }
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
    const float mult = p.softmax_mult;

    float acc_o[1][kDT][4];
    float row_max[1][2];
    float row_sum[1][2];
    float(&o_flat)[kDT * 4] = *reinterpret_cast<float(*)[kDT * 4]>(&acc_o[0][0][0]);

    const uint32_t q_base = sQ + cw * 64 * 128;  // this warpgroup's 64 rows of every chunk
    float sc[1][kNT][4];
    float(&s_flat)[kNT * 4] = *reinterpret_cast<float(*)[kNT * 4]>(&sc[0][0][0]);
    uint32_t pa[kBlockN / 16][4];  // P of the block whose P V is next
    float corr[1][2];

    const auto issueS = [&](int s) {
      wgmmaFence();
#pragma unroll
      for (int ks = 0; ks < T::kHeadDim / 16; ++ks) {
        const uint32_t chunk = ks / 4, within = (ks % 4) * 32;
        const uint64_t da = smemDesc(q_base + chunk * kBlockM * 128 + within, 16, 1024);
        const uint64_t db = smemDesc(sK + s * T::kKVBytes + chunk * kBlockN * 128 + within, 16, 1024);
        wgmmaSS<Elem, kBlockN>(s_flat, da, db, ks > 0 ? 1 : 0);
      }
      wgmmaCommit();
    };
    const auto issuePV = [&](int s) {
      fenceRegs(o_flat);
      wgmmaFence();
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        const uint64_t db = smemDesc(sV + s * T::kKVBytes + kk * 16 * 128, kBlockN * 128, 1024);
        wgmmaRS<Elem, T::kHeadDim>(o_flat, pa[kk], db, 1);
      }
      wgmmaCommit();
    };
    const auto release = [&](uint32_t bar) {
      __syncwarp();
      if (lane == 0) mbarArrive(bar);
    };
    const auto packAll = [&]() {
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) packP<Elem>(pa[kk], sc, 0, kk);
    };
    // Ping-pong: warpgroup w issues only between bar.sync(kTurn + w) and its bar.arrive on the
    // other's barrier; consumer 1 opens consumer 0's first turn. Both take (blocks + 1) turns per
    // tile, and consumer 1 skips its last arrive, so every barrier completes exactly as often as it
    // is waited on and a next tile starts from the same state.
    constexpr int kTurn = 3;  // ids 1, 2: the epilogue's per-warpgroup barriers
    const auto turnBegin = [&]() { namedBarrierSync(kTurn + cw, 256); };
    const auto turnEnd = [&]() { namedBarrierArrive(kTurn + (1 - cw), 256); };

    int it = 0;  // K/V blocks consumed so far (all tiles), as the producer counts them
    for (int q_iter = 0;; ++q_iter) {
      Tile tl;
      if constexpr (kPersistent) {
        mbarWait(barQ, q_iter & 1);
        const int linear = *static_cast<volatile int*>(&s_tile);
        if (linear < 0) break;
        tileAt(linear, tl);
      } else {
        if (q_iter > 0) break;
        tl = grid_tile;
        mbarWait(barQ, 0);
      }
      const int h = tl.h, m0 = tl.m0;
      const int row_diag = m0 + row0 + g + tl.kb.offset;
      // Scores of block n_block (in sc) -> probabilities; the O rescale factor goes to corr.
      const auto scoresToP = [&](int n_block) {
        const int n0 = n_block * kBlockN;
        if (p.transform) transformScores<1, kNT>(sc, p, h, row_diag, n0 + 2 * t);
        if (n_block >= tl.kb.mask_right_from || n_block < tl.kb.mask_left_below)
          maskScores<1, kNT>(sc, p, row_diag, n0, t, tl.seq.len_k);
        softmaxStep<1, kNT>(sc, row_max, row_sum, corr, mult);
      };
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_o[0][dt][e] = 0.0f;
      row_max[0][0] = row_max[0][1] = -INFINITY;
      row_sum[0][0] = row_sum[0][1] = 0.0f;

      int n_block = tl.next(p, tl.kb.n_max);
      if (n_block >= tl.kb.n_min) {
        if (cw == 1) turnEnd();
        {
          const int s = it % kStages;
          mbarWait(ring.fullK(s), (it / kStages) & 1);
          turnBegin();
          issueS(s);
          turnEnd();
          wgmmaWait<0>();
          fenceRegs(s_flat);
          release(ring.emptyK(s));
        }
        scoresToP(n_block);  // O is still 0: no rescale
        packAll();
        ++it;
        for (int n_next = tl.next(p, n_block); n_next >= tl.kb.n_min; n_next = tl.next(p, n_block), ++it) {
          const int s = it % kStages, prev = (it - 1) % kStages;
          mbarWait(ring.fullK(s), (it / kStages) & 1);
          mbarWait(ring.fullV(prev), ((it - 1) / kStages) & 1);
          turnBegin();
          issueS(s);
          issuePV(prev);
          turnEnd();
          wgmmaWait<1>();  // S of n_next
          fenceRegs(s_flat);
          release(ring.emptyK(s));
          scoresToP(n_next);
          wgmmaWait<0>();  // P V of n_block
          fenceRegs(o_flat);
          release(ring.emptyV(prev));
          rescaleRows<1, kDT>(acc_o, corr);
          packAll();
          n_block = n_next;
        }
        if constexpr (kPersistent) release(barQEmpty);  // every S of this tile has completed
        const int last = (it - 1) % kStages;
        mbarWait(ring.fullV(last), ((it - 1) / kStages) & 1);
        turnBegin();
        issuePV(last);
        if (cw == 0) turnEnd();
        wgmmaWait<0>();
        fenceRegs(o_flat);
        if constexpr (kPersistent) release(ring.emptyV(last));
      } else if constexpr (kPersistent) {
        release(barQEmpty);
      }

      float* lse_row0 = lseRow0(p, tl.seq, tl.b, h, m0);
      Elem* og = reinterpret_cast<Elem*>(p.o) + tl.seq.rowOffset(p.o_batch_stride, p.o_row_stride, tl.b) + h * p.o_head_stride;
      if constexpr (kPersistent) {
        // Epilogue from the accumulators (a quad writes 16 contiguous bytes of a row): Q's buffer
        // may already hold the next tile.
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          float lse;
          const float inv = finishRow(row_max[0][hh], row_sum[0][hh], mult, &lse);
          const int r = row0 + g + 8 * hh;
          if (m0 + r < tl.seq.len_q) {
            if (lse_row0 != nullptr && t == 0) lse_row0[r] = lse;
            Elem* orow = og + static_cast<int64_t>(m0 + r) * p.o_row_stride + 2 * t;
#pragma unroll
            for (int dt = 0; dt < kDT; ++dt)
              *reinterpret_cast<uint32_t*>(orow + dt * 8) = ElemTraits<Elem>::pack(acc_o[0][dt][2 * hh] * inv, acc_o[0][dt][2 * hh + 1] * inv);
          }
        }
      } else {
        // Epilogue: normalize and write lse; stage O through this warpgroup's own rows of the Q
        // tile (same swizzled layout) so the global stores are 16-byte rows.
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          float lse;
          const float inv = finishRow(row_max[0][hh], row_sum[0][hh], mult, &lse);
          const int r = row0 + g + 8 * hh;
          if (lse_row0 != nullptr && t == 0 && m0 + r < tl.seq.len_q) lse_row0[r] = lse;
#pragma unroll
          for (int dt = 0; dt < kDT; ++dt) {
            const uint32_t v = ElemTraits<Elem>::pack(acc_o[0][dt][2 * hh] * inv, acc_o[0][dt][2 * hh + 1] * inv);
            stShared32(stagedO<kBlockM>(sQ, r, dt, t), v);
          }
        }
        namedBarrierSync(1 + cw, 128);
        storeStagedRows<T::kHeadDim, kBlockM>(sQ, reinterpret_cast<uint16_t*>(og), p.o_row_stride, cw, tid - 128 * wg, m0, tl.seq.len_q);
      }
    }
  }
#else
  __trap();  // only the sm_90a image has a body; the host never launches another (see below)
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

// ---- host launcher -------------------------------------------------------------------------

template <typename T, bool kPersistent>
bool sm90ImageLoaded() {
  static const bool loaded = sm90ImageOf(flashFwdSm90Kernel<T, kPersistent>);
  return loaded;
}

// Block-sparse calls take the persistent schedule when asked to (AttnParams::sparse_schedule_ctas).
inline bool persistentScheduleFor(const AttnParams& a) {
  return a.block_col_idx != nullptr && a.tile_counter != nullptr && a.sparse_schedule_ctas > 0;
}

inline int persistentCtas(const AttnParams& a, int64_t tiles) {
  int device = 0, sms = 0;
  ATTN_CUDA_CHECK(cudaGetDevice(&device));
  ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  // One CTA fills an SM (shared memory, registers).
  const int64_t ctas = std::min<int64_t>({tiles, sms, a.sparse_schedule_ctas});
  return static_cast<int>(std::max<int64_t>(ctas, 1));
}

template <typename T, bool kPersistent>
void launchSm90Kernel(const Sm90Args& args, dim3 grid, cudaStream_t stream) {
  if (!sm90ImageLoaded<T, kPersistent>()) throwRange("this build of attn-cuda has no sm_90a kernels (rebuild with sm_90a in ATTN_CUDA_GENCODE)");
  auto kernel = flashFwdSm90Kernel<T, kPersistent>;
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
  kernel<<<grid, T::kThreads, T::kSmemBytes, stream>>>(args);
  ATTN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launchFlashFwdSm90(const AttnParams& a, cudaStream_t stream) {
  Sm90Args args{};
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
  // Only tiles that can walk a block-sparse mask (kBlockN divides its blocks) have the schedule.
  if constexpr (kSparseBlock % T::kBlockN == 0) {
    if (persistentScheduleFor(a)) {
      const int64_t tiles = static_cast<int64_t>(num_m) * a.heads_q * a.batch;
      if (tiles > INT_MAX) throwRange("attention: too many query tiles for one launch");
      args.tile_counter = a.tile_counter;
      args.num_m = num_m;
      args.pairs = a.heads_q * a.batch;
      args.num_tiles = static_cast<int>(tiles);
      launchSm90Kernel<T, true>(args, dim3(persistentCtas(a, tiles)), stream);
      return;
    }
  }
  launchSm90Kernel<T, false>(args, dim3(num_m, a.heads_q, a.batch), stream);
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
