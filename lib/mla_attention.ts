/** Multi-head latent attention (absorbed weights) over a {@link PagedLatentCache}: decode and prefill. */
import { checkBoolean, checkFloat32, checkInteger, checkKeys, checkObject, describe } from './errors';
import { selectKernel } from './kernels';
import { native, NativeMlaAttentionOptions } from './native';
import { queryOffsets } from './paged_attention';
import { MLA_LATENT_DIM, MLA_ROW_DIM, PagedLatentCache } from './paged_latent_cache';
import { checkTensor, Tensor } from './tensor';

/** Options of {@link mlaDecode}. */
export interface MlaDecodeOptions {
  /**
   * Score scale, required: MLA's is `1 / sqrt(qk head dim before absorption)`, e.g. `1 / sqrt(192)`
   * for DeepSeek-V3 (128 nope + 64 rope), which the latent width does not tell.
   */
  scale: number;
  /** Tanh soft-capping of scores: `s = softcap * tanh(s / softcap)`; 0 disables. */
  softcap?: number;
  /** Causal mask, bottom-right aligned (default true); matters with several queries per sequence. */
  causal?: boolean;
  /**
   * Queries per sequence, in order (default: one each, i.e. decode). The queries of a sequence are
   * its last tokens, already appended to the cache: multi-token (speculative) decode or prefill.
   */
  queryCounts?: readonly number[];
  /** Write the output here (`[tokens, heads, 512]`, q's dtype and device). */
  out?: Tensor;
  /** Also return the log-sum-exp `[tokens, heads]` (default true). */
  returnLse?: boolean;
  /** KV splits on CUDA (default: chosen to fill the GPU). */
  numSplits?: number;
}

/** Output of {@link mlaDecode}. */
export interface MlaDecodeResult {
  /** `[tokens, heads, 512]` in latent space: multiply by W_UV per head for the value heads. */
  out: Tensor;
  /** Natural-log sum of exp(scores) `[tokens, heads]` f32, or null. */
  lse: Tensor | null;
}

const KEYS = ['scale', 'softcap', 'causal', 'queryCounts', 'out', 'returnLse', 'numSplits'] as const;

/**
 * MLA attention with absorbed weights. `q` is `[tokens, heads, 576]`: per head the absorbed
 * no-rope query `q_nope · W_UK` (512) followed by the rope query (64). Every head reads the same
 * cached rows: `score = q · row * scale` over all 576 columns, output = softmax-weighted sum of the
 * rows' first 512 columns (the latents). This equals standard attention with the decompressed
 * `k = [c W_UKᵀ, k_rope]`, `v = c W_UV` once the output is multiplied by W_UV.
 *
 * Decode is one query per sequence (`q` has `seqs.length` tokens); with `queryCounts` the call is a
 * prefill / multi-token decode over the cached latents, new tokens included (causal by default).
 * Lengths may differ per sequence; on CUDA long contexts are split over the sequence and combined.
 *
 * @example
 * const { out } = mlaDecode(q, cache, layer, [a, b], { scale: 1 / Math.sqrt(192) });
 */
export function mlaDecode(q: Tensor, cache: PagedLatentCache, layer: number, seqs: readonly number[], options: MlaDecodeOptions): MlaDecodeResult {
  return mlaDecodeWith(q, cache, layer, seqs, options, {});
}

/** Kernel selection hooks for tests and benchmarks, not part of the public API. @internal */
export interface MlaDecodeInternals {
  /** CUDA: the mma.sync kernel even where the sm_90a wgmma kernel applies (to test and time both). */
  forceMma?: boolean;
}

/** {@link mlaDecode} with internal kernel-selection hooks. @internal */
export function mlaDecodeWith(
  q: Tensor, cache: PagedLatentCache, layer: number, seqs: readonly number[], options: MlaDecodeOptions, internals: MlaDecodeInternals,
): MlaDecodeResult {
  checkTensor(q, 'q');
  if (!(cache instanceof PagedLatentCache)) throw new TypeError(`cache must be a PagedLatentCache, got ${describe(cache)}`);
  checkInteger(layer, 'layer', 0, cache.layers - 1);
  if (!Array.isArray(seqs) || seqs.length === 0) throw new TypeError(`seqs must be a non-empty array of sequence ids, got ${describe(seqs)}`);
  const o = checkObject(options, 'options');
  checkKeys(o, KEYS, 'options');
  if (q.device !== cache.device || q.dtype !== cache.computeDtype)
    throw new RangeError(`q must be ${cache.computeDtype} on ${cache.device} (the cache's computeDtype and device), got ${q}`);
  if (q.ndim !== 3 || q.shape[2] !== MLA_ROW_DIM || q.shape[1] === 0)
    throw new RangeError(`q must be [tokens, heads, ${MLA_ROW_DIM}] (absorbed latent query 512 then rope 64), got [${q.shape}]`);
  if (q.strides[2] !== 1) throw new RangeError('q must be contiguous in its last dimension');
  const heads = q.shape[1];
  selectKernel('mlaDecode', q.device, cache.dtype, MLA_ROW_DIM);

  if (o.scale === undefined) throw new TypeError('options.scale is required (MLA uses 1 / sqrt(qk head dim before absorption), e.g. 1 / sqrt(192))');
  const params: NativeMlaAttentionOptions = { scale: checkFloat32(o.scale, 'options.scale'), softcap: 0, causal: true, rows: new Int32Array(0), seqLens: new Int32Array(0), numSplits: 0 };
  if (params.scale <= 0) throw new RangeError(`options.scale must be > 0, got ${params.scale}`);
  if (o.softcap !== undefined) {
    params.softcap = checkFloat32(o.softcap, 'options.softcap');
    if (params.softcap < 0) throw new RangeError(`options.softcap must be >= 0, got ${params.softcap}`);
  }
  if (o.causal !== undefined) params.causal = checkBoolean(o.causal, 'options.causal');
  if (o.numSplits !== undefined) params.numSplits = checkInteger(o.numSplits, 'options.numSplits', 1, 1024);

  const { rows, seqLens } = cache.batchInfo(seqs, layer, 'seqs');
  params.rows = rows;
  params.seqLens = seqLens;
  const cuQ = queryOffsets(o.queryCounts, q.shape[0], seqs, seqLens, layer, "the query token's latent");
  if (cuQ) params.cuSeqlensQ = cuQ;
  const outShape = [q.shape[0], heads, MLA_LATENT_DIM];
  let out: Tensor;
  if (o.out !== undefined) {
    out = checkTensor(o.out, 'options.out');
    if (out.device !== q.device || out.dtype !== q.dtype || out.shape.join() !== outShape.join() || out.strides[2] !== 1)
      throw new RangeError(`options.out must be ${q.dtype} [${outShape}] on ${q.device}, contiguous in its last dimension, got ${out}`);
  } else {
    out = Tensor.empty(outShape, { dtype: q.dtype, device: q.device });
  }
  const returnLse = o.returnLse === undefined ? true : checkBoolean(o.returnLse, 'options.returnLse');
  const lse = returnLse ? Tensor.empty([q.shape[0], heads], { dtype: 'f32', device: q.device }) : null;
  if (internals.forceMma) params.forceMma = true;
  native.mlaAttention(q, cache.pool, cache.scales, layer, cache.blockTable, out, lse, params);
  return { out, lse };
}
