/**
 * The native addon's raw interface. Internal: the public API in the other modules validates
 * arguments and names them in errors before anything reaches these functions.
 * @internal
 */
import path from 'node:path';

import type { MemoryStats } from './memory';

/** Opaque, type-tagged handle to native memory (host or device). @internal */
export interface StorageHandle {
  readonly bytes: number;
  readonly released: boolean;
  release(): void;
}

/** The fields native code reads from a tensor. @internal */
export interface TensorDescriptor {
  readonly storage: StorageHandle;
  readonly dtypeCode: number;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  /**
   * The same layout in one array for the binding: [dtypeCode, offset, ndim, ...shape, ...strides].
   * Optional: without it the binding reads the fields one by one.
   */
  readonly layout?: Float64Array;
}

/** @internal */
export interface NativeInfo {
  builtWithCuda: boolean;
  cudaAvailable: boolean;
  cudaReason: string;
  cpuThreads: number;
  devices: { index: number; name: string; sm: number; multiprocessors: number; totalMemory: number; l2CacheBytes: number }[];
}

/** Numeric options passed to the attention kernels (already validated). @internal */
export interface NativeAttentionOptions {
  scale: number;
  softcap: number;
  causal: boolean;
  windowLeft: number;
  windowRight: number;
  alibiSlopes?: Float32Array;
  cuSeqlensQ?: Int32Array;
  cuSeqlensK?: Int32Array;
  blockMask?: NativeBlockMask;
  /** Quantized forward: 1 int8-fp8, 2 int8, 3 fp8 (csrc/common/quant.h); absent or 0: off. */
  quantized?: number;
  /** Quantized forward: the outlier channels leave the 8-bit Q·Kᵀ (AttentionOptions.quantOutliers). */
  quantOutliers?: boolean;
  /** Quantized CUDA forward: run the sm_80 kernel even on a Hopper GPU (tests, benchmarks). */
  forceSm80?: boolean;
}

/** A validated block-sparse mask (lib/block_sparse.ts) as the attention kernels read it. @internal */
export interface NativeBlockMask {
  rowPtr: TensorDescriptor;
  colIdx: TensorDescriptor;
  batch: number;
  heads: number;
  numQBlocks: number;
  numKBlocks: number;
  nnz: number;
}

/** @internal */
export interface NativePagedAttentionOptions extends NativeAttentionOptions {
  rows: Int32Array;
  seqLens: Int32Array;
  numSplits: number;
  /** Benchmark hook: launch this many times and return the device ms per launch (CUDA only). */
  benchIters?: number;
  /** Top-k sparse decode: pages kept per sequence (>= 2), with the cache's page summaries. */
  topKPages?: number;
  summaries?: TensorDescriptor;
  /** The summaries' label channels `[layers, kvHeads, r]` int32 (absent: every channel). */
  summaryChannels?: TensorDescriptor;
  /** Benchmark hook with benchIters and topKPages: return [all, selection alone, decode alone] ms. */
  benchStages?: boolean;
  /**
   * Benchmark hook with benchIters (CUDA decode of up to 32 sequences): groups of `rows.length`
   * block-table rows of sequences as long as `seqLens`; launch i decodes group i % groups, so the
   * timed K/V working set can exceed L2 (scripts/decode-latency.js --cold).
   */
  benchRotateRows?: Int32Array;
  /** Benchmark / test hook (CUDA only): 0 the usual kernel choice, 1 the decode kernel, 2 the prefill kernel. */
  pagedKernel?: number;
}

/**
 * Block-table entries an append stores before its tokens: flat element `tableIdx[i]` of the table
 * becomes page `tablePages[i]` (lib/page_table.ts AppendPlan). @internal
 */
export interface NativeTableEntries {
  tableIdx?: Int32Array;
  tablePages?: Int32Array;
}

/** Options of the MLA attention kernel (already validated). @internal */
export interface NativeMlaAttentionOptions {
  scale: number;
  softcap: number;
  causal: boolean;
  rows: Int32Array;
  seqLens: Int32Array;
  cuSeqlensQ?: Int32Array;
  numSplits: number;
  /** Benchmark hook: launch this many times and return the device ms per launch (CUDA only). */
  benchIters?: number;
  /** Tests and benchmarks: the mma.sync kernel even where the sm_90a wgmma kernel applies. */
  forceMma?: boolean;
}

/** @internal */
export interface NativeAddon {
  empty(device: string, bytes: number): StorageHandle;
  fromHost(device: string, dtypeCode: number, data: ArrayLike<number>): StorageHandle;
  write(t: TensorDescriptor, data: ArrayLike<number>): void;
  fill(t: TensorDescriptor, bits: number): void;
  /** The bit pattern of `value` encoded as one element of the dtype. */
  encodeScalar(dtypeCode: number, value: number): number;
  copy(dst: TensorDescriptor, src: TensorDescriptor): void;
  randomNormal(t: TensorDescriptor, seedHigh: number, seedLow: number, mean: number, std: number): void;
  transfer(t: TensorDescriptor, device: string): Promise<StorageHandle>;
  read(t: TensorDescriptor): Promise<Float32Array | Int32Array | Int8Array>;
  synchronize(device: string): Promise<void>;
  memoryStats(device: string): MemoryStats;
  emptyCache(device: string): void;
  /** Benchmarks: device ms of just reading `windowBytes` of `t` per launch (CUDA only). */
  readFloor(t: TensorDescriptor, windowBytes: number, windows: number, iters: number): { ms: number; blocks: number; threads: number };
  info(): NativeInfo;
  attention(
    q: TensorDescriptor,
    k: TensorDescriptor,
    v: TensorDescriptor,
    out: TensorDescriptor,
    lse: TensorDescriptor | null,
    options: NativeAttentionOptions & { benchIters?: number },
  ): [number, number] | undefined;
  pagedAppend(
    pool: TensorDescriptor,
    layer: number,
    k: TensorDescriptor,
    v: TensorDescriptor,
    blockTable: TensorDescriptor,
    options: { rows: Int32Array; cuNew: Int32Array; startPos: Int32Array; initSmoothing?: boolean } & NativeTableEntries,
    scales?: TensorDescriptor | null,
    kSmooth?: TensorDescriptor | null,
  ): void;
  pagedAttention(
    q: TensorDescriptor,
    pool: TensorDescriptor,
    layer: number,
    blockTable: TensorDescriptor,
    out: TensorDescriptor,
    lse: TensorDescriptor | null,
    options: NativePagedAttentionOptions,
    scales?: TensorDescriptor | null,
    kSmooth?: TensorDescriptor | null,
  ): number | [number, number, number] | undefined;
  copyPages(pool: TensorDescriptor, options: { src: Int32Array; dst: Int32Array }): void;
  pagedSummarize(
    pool: TensorDescriptor,
    summaries: TensorDescriptor,
    layer: number,
    blockTable: TensorDescriptor,
    options: { rows: Int32Array; logical: Int32Array; slotBegin: Int32Array; slotEnd: Int32Array },
    channels?: TensorDescriptor | null,
  ): void;
  pagedChooseChannels(k: TensorDescriptor, channels: TensorDescriptor, layer: number): void;
  mlaAppend(
    pool: TensorDescriptor,
    scales: TensorDescriptor | null,
    layer: number,
    latent: TensorDescriptor,
    rope: TensorDescriptor | null,
    blockTable: TensorDescriptor,
    options: { rows: Int32Array; cuNew: Int32Array; startPos: Int32Array } & NativeTableEntries,
  ): void;
  mlaAttention(
    q: TensorDescriptor,
    pool: TensorDescriptor,
    scales: TensorDescriptor | null,
    layer: number,
    blockTable: TensorDescriptor,
    out: TensorDescriptor,
    lse: TensorDescriptor | null,
    options: NativeMlaAttentionOptions,
  ): number | undefined;
  mlaCopyPages(pool: TensorDescriptor, scales: TensorDescriptor | null, options: { src: Int32Array; dst: Int32Array }): void;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = require('node-gyp-build') as (dir: string) => NativeAddon;

/** The loaded addon (prebuilds/ first, then build/Release). @internal */
export const native: NativeAddon = load(path.join(__dirname, '..'));
