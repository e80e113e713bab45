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
export type { PagedAttentionOptions } from './paged_attention';
