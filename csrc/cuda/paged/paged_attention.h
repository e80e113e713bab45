// Paged KV cache kernels on CUDA: append, decode / paged prefill (split-KV), page copy, block-table
// writes.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "../../common/paged_params.h"

namespace attn::cuda {

bool pagedAttentionSupported(const PagedAttnParams& p, std::string* why);

// Picks the number of KV splits for flash-decoding so that the grid fills `num_sms` SMs.
int pagedChooseSplits(const PagedAttnParams& p, int num_sms);

// Counters (PagedAttnParams::split_counters) a launch of p may use: one per CTA row of its grid.
int64_t pagedCounterSlots(const PagedAttnParams& p);

// Floats of workspace pagedAttention needs for p.num_splits splits (0 when num_splits == 1).
int64_t pagedWorkspaceFloats(const PagedAttnParams& p);

void pagedAppend(const PagedAppendParams& p, cudaStream_t stream);
// append_quant.cu: pagedAppend into an fp8e4m3 / int8 cache (pagedAppend dispatches to it).
void pagedAppendQuant(const PagedAppendParams& p, cudaStream_t stream);
// num_sms: the device's multiprocessor count (the split choice fills it).
void pagedAttention(const PagedAttnParams& p, int num_sms, cudaStream_t stream);
void copyPages(const PageCopyParams& p, cudaStream_t stream);
// table[idx[i]] = values[i] for i < n (copy_pages.cu): the block-table entries of an append
// (pagedAppend, mlaAppend), launched right before it on its stream. Indices must be distinct.
void writeTableEntries(int32_t* table, const int32_t* idx, const int32_t* values, int n, cudaStream_t stream);

// ---- prefill on the flash forward kernel (prefill.cu) ----
// The decode kernel above stages each K/V tile for 16 (query row, head) pairs; the prefill kernel
// is the dense forward (csrc/cuda/flash) reading K/V through the block table, 64-128 query rows of
// one head per K/V tile, and the only one that reads a block-sparse mask.

enum class PagedKernel { Decode, Prefill };

// The kernel pagedAttention's caller runs p on: Prefill when p has a block mask, or is a prefill
// of a 16-bit cache (f16/bf16, head dim 64/128/256) with at least pagedPrefillMinRows() query rows
// per sequence on average and enough 128-row query tiles (x heads) for a quarter of num_sms SMs;
// Decode otherwise (decode, short or narrow prefill, quantized caches).
PagedKernel pagedKernelFor(const PagedAttnParams& p, int num_sms);

// The average query rows per sequence from which a prefill runs on the prefill kernel: 64, or
// ATTN_PAGED_PREFILL_MIN_ROWS (read once; for measuring the crossover).
int pagedPrefillMinRows();

bool pagedPrefillSupported(const PagedAttnParams& p, std::string* why);

// Ignores num_splits / workspace (one CTA per 64/128 query rows of one head walks all its keys).
void pagedPrefill(const PagedAttnParams& p, int num_sms, cudaStream_t stream);

}  // namespace attn::cuda
