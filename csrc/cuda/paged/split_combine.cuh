// The split-KV combine fused into the paged decode kernels: the last CTA of a (sequence, kv head,
// row block) to finish its split merges every split's partial output for its 16 rows, so a split
// decode is one kernel (no combine launch and no wait for the whole grid at batch 1, where the
// call's fixed cost dominates). Same math as combine.cu:
//   o = sum_s exp(lse_s - lse) * O_s,  lse = log(sum_s exp(lse_s)),
// splits with lse_s = -inf weigh 0; a row with no visible key gets o = 0 and lse = -inf.
// Arrival is counted in a.counters[blockIdx.x] (zeroed once by the device context); the last CTA
// resets it, so the counters are zero again for the next launch on the stream.
#pragma once
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../common/ptx.cuh"
#include "paged_internal.h"

namespace attn::cuda::paged {

// Local row r of a CTA row (pairs from m0, kv head kvh, first query row q0): its head h, query row
// `row`, and the (row, head) pair's index.
__device__ __forceinline__ int64_t splitRowPair(const DecodeArgs& a, int m0, int kvh, int q0, int r, int& h, int& row) {
  const int m = m0 + r;
  const int qi = m / a.group;
  h = kvh * a.group + (m - qi * a.group);
  row = q0 + qi;
  return static_cast<int64_t>(row) * a.heads_q + h;
}

// Called by every thread of the CTA after it wrote its partial (ws_o, ws_lse). True in the CTA
// that completes the count: every other split's partial is then visible to it. The arrival is one
// acq_rel atomic of thread 0 between two CTA barriers, as CUTLASS's generic barrier does: the first
// barrier orders every thread's partial writes before thread 0's release, the second orders the
// last CTA's reads after thread 0's acquire. No thread waits on a fence of its own (per-thread
// __threadfence() before and after: 1 x 8k 13.2 vs 12.7-12.8 us, docs/perf.md run 57).
__device__ __forceinline__ bool lastSplitArrived(const DecodeArgs& a) {
  __shared__ int s_last;
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned* counter = a.counters + blockIdx.x;
    unsigned before;
    asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;\n" : "=r"(before) : "l"(counter) : "memory");
    const bool last = before == static_cast<unsigned>(a.num_splits) - 1u;
    if (last) *counter = 0u;  // every split has arrived: ready for the next launch
    s_last = last ? 1 : 0;
  }
  __syncthreads();
  return s_last != 0;
}

// Splits whose lse and partial a lane of combineSplitRows has in flight at once (kBatch), for a
// kernel of `ctas_per_sm` CTAs per SM: 9 registers each, within the kernel's register budget (16
// spilled 532 bytes in the 8-bit d64 kernel, at 128 registers).
constexpr int splitCombineBatch(int ctas_per_sm) { return 65536 / (kDecodeThreads * ctas_per_sm) >= 200 ? 16 : 8; }

// Merges the splits of local rows [0, mrows) (pair m0 + r -> query row q0 + m / group, head
// kvh * group + m % group). Each (row, 8 channels) unit is taken by lpu lanes that split the splits
// among them; a lane loads the lse and the partial of up to kBatch splits in one go, weighs them
// against its running max, and the unit's lanes then merge by shuffles. So the last CTA waits on
// one round of loads from L2 (at 32 splits, lpu = 2: 16 per lane), not on the lse, the weights and
// then the partials in turn (H100, 1 x 8k: 12.8-12.9 -> 12.3-12.4 us, docs/perf.md run 58).
// Partials are read with ld.global.cg: other SMs wrote them during this kernel, so this SM's L1
// must not answer.
template <typename T, int D, int kBatch>
__device__ void combineSplitRows(const DecodeArgs& a, int m0, int mrows, int kvh, int q0) {
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  const int S = a.num_splits;
  const int64_t pairs = static_cast<int64_t>(a.total_q) * a.heads_q;
  const int units = mrows * (D / 8);
  int lpu = 1;  // lanes per unit: a power of two, so a unit's lanes share a warp
  while (lpu < 32 && units * lpu * 2 <= kDecodeThreads) lpu *= 2;
  const int per_pass = kDecodeThreads / lpu;
  const int sub = static_cast<int>(threadIdx.x) % lpu;
  for (int base = 0; base < units; base += per_pass) {  // uniform over the CTA: the shuffles below
    const int u = base + static_cast<int>(threadIdx.x) / lpu;
    const bool active = u < units;
    const int r = active ? u / (D / 8) : 0, c = u % (D / 8);
    int h, row;
    const int64_t idx = splitRowPair(a, m0, kvh, q0, r, h, row);
    const float4* src = reinterpret_cast<const float4*>(a.ws_o + idx * D + c * 8);
    const int64_t step = pairs * D / 4;  // float4s between splits
    float m_lane = kNegInf, sum = 0.0f;  // v and sum are relative to exp(m_lane)
    float v[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = 0.0f;
    for (int s0 = sub; active && s0 < S; s0 += kBatch * lpu) {
      float l[kBatch];
      float4 x[kBatch][2];
#pragma unroll
      for (int k = 0; k < kBatch; ++k) {
        const int s = s0 + k * lpu;
        if (s < S) {
          l[k] = __ldcg(a.ws_lse + s * pairs + idx);
          x[k][0] = __ldcg(src + s * step);
          x[k][1] = __ldcg(src + s * step + 1);
        } else {
          l[k] = kNegInf;
          x[k][0] = x[k][1] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
      }
      float mb = m_lane;
#pragma unroll
      for (int k = 0; k < kBatch; ++k) mb = fmaxf(mb, l[k]);
      const float f = m_lane == kNegInf ? 0.0f : __expf(m_lane - mb);  // what the lane had is 0 at -inf
      sum *= f;
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] *= f;
      m_lane = mb;
#pragma unroll
      for (int k = 0; k < kBatch; ++k) {
        const float w = l[k] == kNegInf ? 0.0f : __expf(l[k] - mb);  // splits that saw no key weigh 0
        sum += w;
        v[0] += w * x[k][0].x; v[1] += w * x[k][0].y; v[2] += w * x[k][0].z; v[3] += w * x[k][0].w;
        v[4] += w * x[k][1].x; v[5] += w * x[k][1].y; v[6] += w * x[k][1].z; v[7] += w * x[k][1].w;
      }
    }
    // The unit's lanes: one max, each lane's share brought to it, then summed.
    float M = m_lane;
    for (int o = 1; o < lpu; o <<= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    const float f = m_lane == kNegInf ? 0.0f : __expf(m_lane - M);
    sum *= f;
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] *= f;
    for (int o = 1; o < lpu; o <<= 1) {
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] += __shfl_xor_sync(0xffffffffu, v[k], o);
      sum += __shfl_xor_sync(0xffffffffu, sum, o);
    }
    if (active && sub == 0) {
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;  // a row with no visible key: o = 0
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] *= inv;
      T* dst = static_cast<T*>(a.o) + static_cast<int64_t>(row) * a.o_row_stride + static_cast<int64_t>(h) * a.o_head_stride + c * 8;
      store8<T>(dst, v);
      if (c == 0 && a.lse) a.lse[idx] = M == kNegInf ? kNegInf : M + __logf(sum);
    }
  }
}

// The cluster form of the combine (a.cluster: the num_splits CTAs of this CTA row are one thread
// block cluster, rank = split). Each CTA left its normalized partial for local rows [0, mrows) in
// its own shared memory (s_part, row stride `stride` floats) and its natural-log lse in s_lse.
// After the cluster barrier every CTA merges a share of the (row, 8 channels) units, one lane per
// split reading that split's lse and partial through distributed shared memory, the lanes' sums
// added by shuffles; a second barrier keeps every CTA's shared memory alive until all have read.
// This replaces the global partials, the fence, the arrival counter and the last CTA's reads.
template <typename T, int D>
__device__ void clusterCombineRows(const DecodeArgs& a, int m0, int mrows, int kvh, int q0, float* s_part, int stride,
                                   float* s_lse) {
#if __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  const float kNegInf = __int_as_float(static_cast<int>(0xff800000u));
  cluster.sync();  // every split's partial and lse are in its shared memory

  const int S = a.num_splits;  // == the cluster size, <= 16
  const int rank = static_cast<int>(cluster.block_rank());
  int lanes = 1;  // lanes per unit: a power of two >= S, so a unit's lanes share a warp
  while (lanes < S) lanes <<= 1;
  const int per_cta = kDecodeThreads / lanes;  // units per CTA per pass
  const int s = static_cast<int>(threadIdx.x) % lanes;
  const int units = mrows * (D / 8);
  for (int base = rank * per_cta; base < units; base += S * per_cta) {  // uniform over the CTA: the shuffles below
    const int u = base + static_cast<int>(threadIdx.x) / lanes;
    const bool active = u < units;
    const int r = active ? u / (D / 8) : 0, c = u % (D / 8);
    float lse = kNegInf;
    float4 x0 = make_float4(0.0f, 0.0f, 0.0f, 0.0f), x1 = x0;
    if (active && s < S) {
      const float* part = cluster.map_shared_rank(s_part, s) + r * stride + c * 8;
      lse = *cluster.map_shared_rank(s_lse + r, s);
      x0 = reinterpret_cast<const float4*>(part)[0];
      x1 = reinterpret_cast<const float4*>(part)[1];
    }
    float mx = lse;
    for (int o = 1; o < lanes; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    const float w = (mx == kNegInf || lse == kNegInf) ? 0.0f : __expf(lse - mx);
    float v[8] = {w * x0.x, w * x0.y, w * x0.z, w * x0.w, w * x1.x, w * x1.y, w * x1.z, w * x1.w};
    float sum = w;
    for (int o = 1; o < lanes; o <<= 1) {
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] += __shfl_xor_sync(0xffffffffu, v[k], o);
      sum += __shfl_xor_sync(0xffffffffu, sum, o);
    }
    if (active && s == 0) {
      int h, row;
      const int64_t idx = splitRowPair(a, m0, kvh, q0, r, h, row);
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] *= inv;
      T* dst = static_cast<T*>(a.o) + static_cast<int64_t>(row) * a.o_row_stride + static_cast<int64_t>(h) * a.o_head_stride + c * 8;
      store8<T>(dst, v);
      if (c == 0 && a.lse) a.lse[idx] = mx == kNegInf ? kNegInf : mx + __logf(sum);
    }
  }
  cluster.sync();  // no CTA leaves while another still reads its shared memory
#endif
}

}  // namespace attn::cuda::paged
