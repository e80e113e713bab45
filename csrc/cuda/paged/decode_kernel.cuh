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
// partial output and its natural-log lse go to the workspace for combine.cu.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "../check.h"
#include "../common/ptx.cuh"
#include "paged_internal.h"
#include "split_combine.cuh"

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
  static constexpr int kOStride = D + 8;                  // floats per row of the epilogue buffer
  static_assert(kWarps * 16 == kN, "each warp takes 16 keys of a tile");
  static_assert(kThreads % kChunks == 0 && kN % kLoadRows == 0, "load mapping");
  static_assert(kSmem == kQBytes + kStages * 2 * kTileBytes, "smem layout");
  static_assert(kWarps * kRows * kOStride * 4 <= decodeSmemBytes(D, 2), "epilogue buffer fits 2 stages");
  static_assert(kMaxStages >= kStages && kMaxStages <= 9, "cpAsyncWaitDyn covers stages - 2 <= 7");
};

// Byte offset of 16-byte chunk `chunk` of row `row` in a [rows][D] tile, XOR-swizzled so that
// ldmatrix (8 rows, one chunk column) and the row-contiguous cp.async writes are conflict-free.
template <int D>
__device__ __forceinline__ uint32_t swz(int row, int chunk) {
  return static_cast<uint32_t>((row * (D / 8) + (chunk ^ (row & 7))) * 16);
}

template <typename T, int D>
__global__ void __launch_bounds__(kDecodeThreads, DecodeCfg<D>::kMinBlocks) pagedDecodeKernel(const DecodeArgs a) {
  using Cfg = DecodeCfg<D>;
  constexpr int kN = Cfg::kN;
  const int stages = a.stages;  // >= 2
  constexpr int kLdChunks = Cfg::kChunks;
  constexpr int kLdRows = Cfg::kLoadRows;
  constexpr int kKPT = Cfg::kKeysPerThread;
  constexpr float kLog2e = 1.4426950408889634f;
  constexpr float kLn2 = 0.6931471805599453f;
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));

  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ float sm_m[kDecodeWarps][kDecodeRows];
  __shared__ float sm_l[kDecodeWarps][kDecodeRows];
  __shared__ int s_pg[(Cfg::kMaxStages - 1) * kN];  // page of each key of the prologue tiles

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Lets the combine kernel (a programmatic dependent, see combine.cu) launch early; it still
  // waits for this grid's completion and memory before it reads the workspace.
  if (a.num_splits > 1) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;

  int bid = blockIdx.x;
  const int mb = bid % a.mblocks;
  bid /= a.mblocks;
  const int kvh = bid % a.heads_kv;
  const int b = bid / a.heads_kv;
  const int split = blockIdx.y;

  const int q0 = a.cu_q ? a.cu_q[b] : b;
  const int nq = a.cu_q ? a.cu_q[b + 1] - q0 : 1;
  const int len_k = max(a.seq_lens[b], 0);
  const int rows_total = nq * a.group;
  const int m0 = mb * kDecodeRows;
  if (m0 >= rows_total) return;  // uniform over the CTA
  const int mrows = min(kDecodeRows, rows_total - m0);
  const int offset = len_k - nq;  // query row qi sits at position offset + qi

  // Visible keys of local row m: [lo, hi) within [0, len_k).
  auto rowRange = [&](int m, int& lo, int& hi) {
    const long long pos = static_cast<long long>(offset) + (m0 + m) / a.group;
    long long l = 0, h = len_k;
    if (a.window_left >= 0) l = max(l, pos - a.window_left);
    if (a.window_right >= 0) h = min(h, pos + a.window_right + 1);
    lo = static_cast<int>(min(l, static_cast<long long>(len_k)));
    hi = static_cast<int>(max(h, 0LL));
  };

  // The CTA's key range: the union of its rows' ranges. max_lo / min_hi bound the tiles that
  // need no mask for any row.
  int lo_all = INT_MAX, hi_all = 0, max_lo = 0, min_hi = INT_MAX;
  bool any_empty = false;
  for (int m = 0; m < mrows; ++m) {
    int lo, hi;
    rowRange(m, lo, hi);
    if (hi <= lo) {
      any_empty = true;
      continue;
    }
    lo_all = min(lo_all, lo);
    hi_all = max(hi_all, hi);
    max_lo = max(max_lo, lo);
    min_hi = min(min_hi, hi);
  }
  if (lo_all >= hi_all) lo_all = hi_all = 0;

  // This split's chunk of the range, in whole tiles.
  const int lo_al = lo_all & ~(kN - 1);
  const int span = hi_all - lo_al;
  const int chunk = ((span + a.num_splits - 1) / a.num_splits + kN - 1) & ~(kN - 1);
  const int kbeg = lo_al + split * chunk;
  const int kend = min(hi_all, kbeg + chunk);
  const int ntiles = kend > kbeg ? (kend - kbeg + kN - 1) / kN : 0;
  const int tile_hi = min(min_hi, kend);  // keys below this are visible to every row (if >= max_lo)

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
  const int row = a.block_table_rows != nullptr ? __ldg(a.block_table_rows + b) : b;
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

  // Per-thread rows of the mma fragments: g and g + 8.
  const int g = lane >> 2;
  const int t4 = lane & 3;
  int row_lo[2], row_hi[2], row_pos[2];
  float row_slope[2];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int m = g + rr * 8;
    row_lo[rr] = 0;
    row_hi[rr] = 0;
    row_pos[rr] = 0;
    row_slope[rr] = 0.0f;
    if (m < mrows) {
      rowRange(m, row_lo[rr], row_hi[rr]);
      const int qi = (m0 + m) / a.group;
      row_pos[rr] = offset + qi;
      if (a.alibi) row_slope[rr] = a.alibi[kvh * a.group + (m0 + m - qi * a.group)] * kLog2e;
    }
    row_hi[rr] = min(row_hi[rr], kend);
  }

  float o_acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o_acc[i][0] = o_acc[i][1] = o_acc[i][2] = o_acc[i][3] = 0.0f;
  float m_run[2] = {kNegInf, kNegInf};
  float l_run[2] = {0.0f, 0.0f};

  // ldmatrix lane addressing (see the fragment layouts of mma.m16n8k16).
  const int q_lrow = (lane & 7) + ((lane >> 3) & 1) * 8, q_lchunk = lane >> 4;
  const int k_lrow = warp * 16 + (lane & 7) + (lane >> 4) * 8, k_lchunk = (lane >> 3) & 1;
  const int v_lrow = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, v_lchunk = lane >> 4;
  const bool transform = a.has_softcap || a.alibi != nullptr;

  int stage = 0;                // stage of tile it
  int load_stage = stages - 1;  // stage of tile it + stages - 1 (= the one tile it-1 used)
  for (int it = 0; it < ntiles; ++it) {
    cpAsyncWaitDyn(stages - 2);
    __syncthreads();  // tile `it` is in shared memory; every warp is done with tile it-1
    {
      const int nt = it + stages - 1;
      if (nt < ntiles) issue(nt, load_stage, pg);
      cpAsyncCommit();
      if (nt + 1 < ntiles) lookup(nt + 1, pg);
    }

    const uint32_t sk = sK(stage), sv = sV(stage);
    stage = stage + 1 == stages ? 0 : stage + 1;
    load_stage = load_stage + 1 == stages ? 0 : load_stage + 1;
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

    // Scores in log2 units, then the mask.
    const bool need_mask = any_empty || ts < max_lo || ts + kN > tile_hi;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int rr = e >> 1;
        const int j = ts + warp * 16 + nt * 8 + 2 * t4 + (e & 1);
        float x;
        if (!transform) {
          x = s[nt][e] * a.scale_log2;
        } else {
          x = a.has_softcap ? a.softcap_log2 * tanhf(s[nt][e] * a.softcap_scale) : s[nt][e] * a.scale_log2;
          x -= row_slope[rr] * fabsf(static_cast<float>(row_pos[rr] - j));
        }
        if (need_mask && (j < row_lo[rr] || j >= row_hi[rr])) x = kNegInf;
        s[nt][e] = x;
      }
    }

    // Online softmax for rows g and g + 8 (the quad of 4 lanes shares a row).
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mx = fmaxf(fmaxf(s[0][2 * rr], s[0][2 * rr + 1]), fmaxf(s[1][2 * rr], s[1][2 * rr + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[rr], mx);
      const float m_use = m_new == kNegInf ? 0.0f : m_new;  // every key so far masked: keep exp2 finite
      const float alpha = exp2f(m_run[rr] - m_use);         // m_run == -inf -> 0
      m_run[rr] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = exp2f(s[nt][2 * rr + e] - m_use);  // -inf -> 0
          s[nt][2 * rr + e] = p;
          sum += p;
        }
      }
      l_run[rr] = l_run[rr] * alpha + sum;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        o_acc[i][2 * rr] *= alpha;
        o_acc[i][2 * rr + 1] *= alpha;
      }
    }


    // O += P V: the S accumulators are the A fragment of a 16x16 P tile.
    uint32_t pa[4];
    pa[0] = ElemTraits<T>::pack(s[0][0], s[0][1]);
    pa[1] = ElemTraits<T>::pack(s[0][2], s[0][3]);
    pa[2] = ElemTraits<T>::pack(s[1][0], s[1][1]);
    pa[3] = ElemTraits<T>::pack(s[1][2], s[1][3]);
#pragma unroll
    for (int np = 0; np < D / 16; ++np) {
      uint32_t vb[4];
      ldmatrixX4Trans(vb, sv + swz<D>(v_lrow, 2 * np + v_lchunk));
      mma16816<T>(o_acc[2 * np], pa, vb[0], vb[1]);
      mma16816<T>(o_acc[2 * np + 1], pa, vb[2], vb[3]);
    }
  }

  // Epilogue: merge the 4 warps' (m, l, O) per row through shared memory.
  cpAsyncWait<0>();
  __syncthreads();  // all warps done with the pipeline buffers
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    l_run[rr] += __shfl_xor_sync(0xffffffffu, l_run[rr], 1);
    l_run[rr] += __shfl_xor_sync(0xffffffffu, l_run[rr], 2);
  }
  if (t4 == 0) {
    sm_m[warp][g] = m_run[0];
    sm_m[warp][g + 8] = m_run[1];
    sm_l[warp][g] = l_run[0];
    sm_l[warp][g + 8] = l_run[1];
  }
  __syncthreads();

  float* s_o = reinterpret_cast<float*>(smem);  // [kWarps][16][kOStride]
  const bool split_out = a.num_splits > 1;
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int row = g + rr * 8;
    float M = kNegInf;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) M = fmaxf(M, sm_m[w][row]);
    const float Mu = M == kNegInf ? 0.0f : M;
    float L = 0.0f;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) L += sm_l[w][row] * exp2f(sm_m[w][row] - Mu);
    const float fac = L > 0.0f ? exp2f(m_run[rr] - Mu) / L : 0.0f;
    float* dst = s_o + (warp * kDecodeRows + row) * Cfg::kOStride + 2 * t4;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      *reinterpret_cast<float2*>(dst + i * 8) = make_float2(o_acc[i][2 * rr] * fac, o_acc[i][2 * rr + 1] * fac);
    }
    if (warp == 0 && t4 == 0 && row < mrows) {
      const float lse = L > 0.0f ? M * kLn2 + logf(L) : kNegInf;
      const int m = m0 + row;
      const int qi = m / a.group;
      const int64_t idx = static_cast<int64_t>(q0 + qi) * a.heads_q + kvh * a.group + (m - qi * a.group);
      if (split_out) {
        a.ws_lse[static_cast<int64_t>(split) * a.total_q * a.heads_q + idx] = lse;
      } else if (a.lse) {
        a.lse[idx] = lse;
      }
    }
  }
  __syncthreads();

  for (int u = tid; u < kDecodeRows * Cfg::kChunks; u += Cfg::kThreads) {
    const int r = u / Cfg::kChunks, c = u % Cfg::kChunks;
    if (r >= mrows) break;  // u grows with r
    float v[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = 0.0f;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) {
      const float4* src = reinterpret_cast<const float4*>(s_o + (w * kDecodeRows + r) * Cfg::kOStride + c * 8);
      const float4 x0 = src[0], x1 = src[1];
      v[0] += x0.x; v[1] += x0.y; v[2] += x0.z; v[3] += x0.w;
      v[4] += x1.x; v[5] += x1.y; v[6] += x1.z; v[7] += x1.w;
    }
    const int m = m0 + r;
    const int qi = m / a.group;
    const int h = kvh * a.group + (m - qi * a.group);
    const int row = q0 + qi;
    if (split_out) {
      float* dst = a.ws_o + ((static_cast<int64_t>(split) * a.total_q + row) * a.heads_q + h) * D + c * 8;
      reinterpret_cast<float4*>(dst)[0] = make_float4(v[0], v[1], v[2], v[3]);
      reinterpret_cast<float4*>(dst)[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
      T* dst = static_cast<T*>(a.o) + static_cast<int64_t>(row) * a.o_row_stride + static_cast<int64_t>(h) * a.o_head_stride + c * 8;
      store8<T>(dst, v);
    }
  }
  if (split_out && a.counters != nullptr && lastSplitArrived(a))
    combineSplitRows<T, D>(a, m0, mrows, kvh, q0, reinterpret_cast<float*>(smem));
}

template <typename T, int D>
void launchPagedDecode(const DecodeArgs& args, cudaStream_t stream) {
  using Cfg = DecodeCfg<D>;
  auto kernel = pagedDecodeKernel<T, D>;
  DecodeArgs a = args;
  const dim3 grid(static_cast<unsigned>(a.batch) * a.heads_kv * a.mblocks, a.num_splits);
  // A CTA alone on its SM takes the deep pipeline; otherwise CTAs share SMs.
  const bool alone = static_cast<int64_t>(grid.x) * grid.y <= a.num_sms;
  a.stages = alone ? Cfg::kMaxStages : Cfg::kStages;
  const int smem = decodeSmemBytes(D, a.stages);
  if (smem > 48 * 1024) {
    ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  }
  kernel<<<grid, Cfg::kThreads, smem, stream>>>(a);
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda::paged
