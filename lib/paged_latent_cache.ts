/** A paged cache of MLA latents: per token one 576-wide row (latent 512, then rope key 64). */
import type { Device } from './device';
import { checkDType, DType, dtypeSize } from './dtype';
import { checkInteger, checkKeys, checkObject } from './errors';
import { selectKernel } from './kernels';
import { native } from './native';
import { checkPageGeometry, PagedSequences } from './page_table';
import type { CacheUsage } from './paged_kv_cache';
import { checkTensor, Tensor } from './tensor';

/** Width of the compressed latent `c` (DeepSeek-V2/V3 `kv_lora_rank`). */
export const MLA_LATENT_DIM = 512;
/** Width of the decoupled rope key `k_r` (DeepSeek `qk_rope_head_dim`). */
export const MLA_ROPE_DIM = 64;
/** Width of one cached row: latent, then rope key. */
export const MLA_ROW_DIM = MLA_LATENT_DIM + MLA_ROPE_DIM;

/** Options of {@link PagedLatentCache}. */
export interface PagedLatentCacheOptions {
  /** Transformer layers sharing the page allocation (a page holds the rows of every layer). */
  layers: number;
  /** Pages in the pool. */
  capacityPages: number;
  /** Tokens per page, a power of two up to 256 (default 64). */
  pageSize?: number;
  /** Live sequences at most (block-table rows; default 256). */
  maxSequences?: number;
  /** Tokens per sequence at most (default: the whole pool, capped at 131072). */
  maxSequenceLength?: number;
  /**
   * Storage type of the rows (default bf16 on CUDA, f32 on the CPU). `fp8e4m3` quantizes every row
   * on append with two float32 scales per token (latent and rope key, each `amax / 448`).
   */
  dtype?: DType;
  /**
   * Type of what goes in and comes out: appended latents, queries, outputs. Equals `dtype` for
   * f32/f16/bf16 caches; for fp8 caches bf16 on CUDA (default) and f32 (default), f16 or bf16 on the CPU.
   */
  computeDtype?: DType;
  /** Device of the pool (default: {@link defaultDevice}). */
  device?: Device;
}

const OPTION_KEYS = ['layers', 'capacityPages', 'pageSize', 'maxSequences', 'maxSequenceLength', 'dtype', 'computeDtype', 'device'] as const;
const FLOATING: readonly DType[] = ['f32', 'f16', 'bf16'];

/**
 * Latent KV memory for multi-head latent attention (DeepSeek-V2/V3) in fixed-size pages.
 *
 * All query heads of a sequence share one stream of latents, so a page holds `pageSize` rows of
 * {@link MLA_ROW_DIM} elements (per layer), read by {@link mlaDecode} with 16-byte vector loads.
 * Pages, forks (copy-on-write), freeing and accounting work exactly as in
 * {@link PagedKVCache} (both extend the same page bookkeeping).
 * Running out of pages throws a RangeError and leaves the cache unchanged.
 */
export class PagedLatentCache extends PagedSequences implements Disposable {
  /** {@link MLA_LATENT_DIM}. */
  readonly latentDim = MLA_LATENT_DIM;
  /** {@link MLA_ROPE_DIM}. */
  readonly ropeDim = MLA_ROPE_DIM;
  /** Storage type of the rows. */
  readonly dtype: DType;
  /** Type of appended latents, queries and outputs. */
  readonly computeDtype: DType;
  /** Rows `[layers, capacityPages, pageSize, 576]`. @internal */
  readonly pool: Tensor;
  /** fp8 only: per-token scales `[layers, capacityPages, pageSize, 2]` f32 (latent, rope), else null. @internal */
  readonly scales: Tensor | null;

  constructor(options: PagedLatentCacheOptions) {
    const o = checkObject(options, 'options');
    checkKeys(o, OPTION_KEYS, 'options');
    super(checkPageGeometry(o, 'PagedLatentCache', 64));
    this.dtype = o.dtype === undefined ? (this.device === 'cpu' ? 'f32' : 'bf16') : checkDType(o.dtype, 'options.dtype');
    if (![...FLOATING, 'fp8e4m3'].includes(this.dtype)) throw new RangeError(`options.dtype must be f32, f16, bf16 or fp8e4m3, got ${this.dtype}`);
    const fp8 = this.dtype === 'fp8e4m3';
    this.computeDtype = o.computeDtype === undefined
      ? (fp8 ? (this.device === 'cpu' ? 'f32' : 'bf16') : this.dtype)
      : checkDType(o.computeDtype, 'options.computeDtype');
    if (fp8 ? !FLOATING.includes(this.computeDtype) : this.computeDtype !== this.dtype)
      throw new RangeError(`options.computeDtype must be ${fp8 ? 'f32, f16 or bf16' : `${this.dtype} like options.dtype`} for a ${this.dtype} cache, got ${this.computeDtype}`);
    selectKernel('mlaDecode', this.device, this.dtype, MLA_ROW_DIM);
    if (this.device !== 'cpu' && this.computeDtype !== 'bf16')
      throw new RangeError(`options.computeDtype must be bf16 on ${this.device}, got ${this.computeDtype}`);

    this.pool = this.allocatePages(() => Tensor.empty([this.layers, this.capacityPages, this.pageSize, MLA_ROW_DIM], { dtype: this.dtype, device: this.device }));
    this.scales = fp8 ? this.allocatePages(() => Tensor.empty([this.layers, this.capacityPages, this.pageSize, 2], { dtype: 'f32', device: this.device })) : null;
  }

  /**
   * Appends new tokens to `layer` of one sequence, or of several at once with `counts[i]` tokens
   * for `seq[i]` (rows in order). Either `latent` is `[tokens, 576]` (latent then rope key) and
   * `rope` is omitted, or `latent` is `[tokens, 512]` and `rope` `[tokens, 64]`; both in the cache's
   * {@link PagedLatentCache.computeDtype} on its device, contiguous in the last dimension. One fused
   * kernel writes (and for fp8 quantizes) every row into its page.
   */
  append(seq: number | readonly number[], layer: number, latent: Tensor, rope?: Tensor | null, counts?: readonly number[]): void {
    this.checkLive();
    const states = this.table.appendStates(seq);
    checkInteger(layer, 'layer', 0, this.layers - 1);
    checkTensor(latent, 'latent');
    const hasRope = rope !== undefined && rope !== null;
    if (hasRope) checkTensor(rope, 'rope');
    const width = hasRope ? MLA_LATENT_DIM : MLA_ROW_DIM;
    for (const [t, name, w] of [[latent, 'latent', width], ...(hasRope ? [[rope, 'rope', MLA_ROPE_DIM] as const] : [])] as const) {
      if (t.device !== this.device || t.dtype !== this.computeDtype)
        throw new RangeError(`${name} must be ${this.computeDtype} on ${this.device} (the cache's computeDtype and device), got ${t}`);
      if (t.ndim !== 2 || t.shape[1] !== w) throw new RangeError(`${name} must be [tokens, ${w}]${name === 'latent' && !hasRope ? ' (latent 512 then rope 64; or pass rope separately)' : ''}, got [${t.shape}]`);
      if (t.strides[1] !== 1) throw new RangeError(`${name} must be contiguous in its last dimension`);
    }
    const tokens = latent.shape[0];
    if (hasRope && rope.shape[0] !== tokens) throw new RangeError(`rope has ${rope.shape[0]} tokens, latent ${tokens}`);
    let n: number[];
    if (counts === undefined) {
      if (states.length !== 1) throw new TypeError('counts is required when appending to several sequences');
      n = [tokens];
    } else {
      if (!Array.isArray(counts) || counts.length !== states.length) throw new RangeError(`counts must have one entry per sequence (${states.length})`);
      n = counts.map((c, i) => checkInteger(c, `counts[${i}]`));
      const total = n.reduce((a, b) => a + b, 0);
      if (total !== tokens) throw new RangeError(`counts sum to ${total} but latent has ${tokens} tokens`);
    }
    const plan = this.table.planAppend(states, layer, n);
    if (plan.copySrc.length) native.mlaCopyPages(this.pool, this.scales, { src: plan.copySrc, dst: plan.copyDst });
    this.table.enqueueAppend(plan, () => native.mlaAppend(this.pool, this.scales, layer, latent, hasRope ? rope : null, this.table.blockTable, {
      rows: plan.rows, cuNew: plan.cuNew, startPos: plan.startPos, tableIdx: plan.tableIdx, tablePages: plan.tablePages,
    }));
    this.table.commit(plan, layer);
  }

  /** Page accounting; `bytesPerPage` counts every layer's rows (and fp8 scales). */
  usage(): CacheUsage {
    const c = this.table.counts();
    const rowBytes = MLA_ROW_DIM * dtypeSize(this.dtype) + (this.scales ? 8 : 0);
    const bytesPerPage = this.layers * this.pageSize * rowBytes;
    return {
      capacityPages: this.capacityPages, usedPages: c.used, freePages: c.free, sharedPages: c.shared, sequences: c.sequences,
      tokens: c.tokens, pageSize: this.pageSize, bytesPerPage, poolBytes: bytesPerPage * this.capacityPages,
    };
  }

  /** Frees the pool, the scales and the block tables. */
  dispose(): void {
    this.pool.dispose();
    this.scales?.dispose();
    this.table.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  protected checkLive(): void {
    if (this.pool.disposed || this.table.disposed) throw new TypeError('the PagedLatentCache has been disposed');
  }
}
