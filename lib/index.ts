/**
 * attn-cuda: FlashAttention-style attention for Node.js on CUDA GPUs and CPUs.
 * @packageDocumentation
 */
export { attention } from './attention';
export type { AttentionOptions, AttentionResult, QuantizedMode, ScoreOptions } from './attention';
export { cuda, defaultDevice } from './device';
export type { CudaDeviceInfo, Device } from './device';
export { DTYPES, dtypeSize } from './dtype';
export type { DType } from './dtype';
export { info } from './info';
export type { AttnInfo } from './info';
export { KERNEL_FAMILIES } from './kernels';
export type { KernelFamily } from './kernels';
export { memory, synchronize } from './memory';
export type { MemoryStats } from './memory';
export { Tensor } from './tensor';
export type { ArrayData, HostArray, TensorOptions } from './tensor';
export { PagedKVCache } from './paged_kv_cache';
export type { CacheUsage, PagedKVCacheOptions } from './paged_kv_cache';
export { pagedAttention } from './paged_attention';
export type { PagedAttentionOptions, TopKBudget } from './paged_attention';
export { BlockSparseMask, SPARSE_BLOCK_SIZE } from './block_sparse';
export type { BlockMaskGrid, BlockMaskOptions, BlockMaskShape, RadialMaskOptions, SlidingWindowMaskOptions } from './block_sparse';
export { PagedLatentCache, MLA_LATENT_DIM, MLA_ROPE_DIM, MLA_ROW_DIM } from './paged_latent_cache';
export type { PagedLatentCacheOptions } from './paged_latent_cache';
export { mlaDecode } from './mla_attention';
export type { MlaDecodeOptions, MlaDecodeResult } from './mla_attention';
