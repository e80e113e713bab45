// One chunk of at most kChunk keys into the online softmax and accumulators of query rows: the
// inner loops of the CPU dense kernel (attention.cpp), the paged kernel's prefill and decode
// (paged_attention.cpp, which gathers or dequantizes each chunk of K/V from its pages, or reads
// an f32 one in place) and MLA (mla_attention.cpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "../common/block_sparse_mask.h"
#include "score_rules.h"

namespace attn::cpu {

// Keys per chunk: one max and at most one accumulator rescale per row and chunk. A divisor of
// kSparseBlock, so block-sparse ranges start on chunk boundaries.
constexpr int kChunk = 16;
// Query rows that share each chunk of K/V while it is in cache (a divisor of kSparseBlock, so a
// block of rows shares one block-sparse mask row).
constexpr int kRows = 64;
static_assert(kSparseBlock % kChunk == 0 && kSparseBlock % kRows == 0, "chunks and row blocks within mask blocks");

// visit(js, je) for each chunk of the key ranges (ascending, half-open): chunks sit on multiples of
// kChunk, a range's ends cut them, so a mask listing every block visits the same chunks as no mask
// and both give bit-identical results.
template <typename Visit>
void forEachChunk(const std::vector<std::pair<int64_t, int64_t>>& ranges, Visit&& visit) {
  for (const auto& [a, z] : ranges)
    for (int64_t jb = a / kChunk * kChunk; jb < z; jb += kChunk) visit(std::max(jb, a), std::min<int64_t>(z, jb + kChunk));
}

// Row lengths of a chunk: query and key rows of dk floats (the dot products), value and
// accumulator rows of dv, consecutive key and value rows ld floats apart. Attention: all three the
// head dim; MLA: 576 / 512 / 576 (a key's value is the latent part of its own row).
struct ChunkDims {
  int dk, dv, ld;
  static ChunkDims square(int d) { return {d, d, d}; }
};

// Keys j0 .. j0 + n - 1 (n <= kChunk; k and v point at key j0's row) into one query row i's
// softmax state and accumulator. Scores follow `rules` (offset = len_k - len_q). A chunk whose
// scores are all -inf weighs 0, as on the GPU; a NaN score makes the row NaN.
void attendKeys(const float* q, const float* k, const float* v, ChunkDims d, const ScoreRules& rules, float slope,
                int64_t i, int64_t offset, int64_t j0, int n, OnlineSoftmax& sm, float* acc);

// The same for rows i0 .. i0 + rows - 1 (q: [rows][dk], acc: [rows][dv]; rows <= kRows) that all
// see every key of the chunk j0 .. j0 + n - 1: each K and V load serves several rows. `streamed`:
// k and v are read in place from memory (not a gathered, cache-hot buffer), which changes the
// order of the loads for few rows, not the results.
void attendChunkRows(const float* q, int rows, const float* k, const float* v, ChunkDims d, const ScoreRules& rules,
                     float slope, int64_t i0, int64_t offset, int64_t j0, int n, OnlineSoftmax* sm, float* acc,
                     bool streamed = false);

// Rows i0 .. i0 + rows - 1 (q, acc as above; row r sees keys [lo[r], hi[r])) over the chunk
// js .. je - 1 (k, v point at key js): the rows that see all of it go together through
// attendChunkRows, the others take their part of it through attendKeys.
void attendChunk(const float* q, int rows, const int64_t* lo, const int64_t* hi, const float* k, const float* v,
                 ChunkDims d, const ScoreRules& rules, float slope, int64_t i0, int64_t offset, int64_t js, int64_t je,
                 OnlineSoftmax* sm, float* acc);

}  // namespace attn::cpu
