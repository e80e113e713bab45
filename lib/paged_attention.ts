/** Attention of new queries against a {@link PagedKVCache}: decode (one query per sequence) and prefill. */
import { ScoreOptions, scoreParams } from './attention';
import { BlockSparseMask, checkBlockMask } from './block_sparse';
import { checkBoolean, checkInteger, checkKeys, checkObject, describe } from './errors';
import { selectKernel } from './kernels';
import { native, NativePagedAttentionOptions } from './native';
import { PagedKVCache } from './paged_kv_cache';
import { checkTensor, Tensor } from './tensor';

/** Options of {@link pagedAttention}. */
export interface PagedAttentionOptions extends ScoreOptions {
  /**
   * Queries per sequence, in order (default: one each, i.e. decode). The queries of a sequence are
   * its last tokens: already appended to the cache, at positions `length - count ... length - 1`.
   */
  queryCounts?: readonly number[];
  /** Write the output here (q's shape, dtype and device). */
  out?: Tensor;
  /** Also return the log-sum-exp `[tokens, heads]` (default true). */
  returnLse?: boolean;
  /** KV splits for flash-decoding on CUDA (default: chosen to fill the GPU). */
  numSplits?: number;
  /**
   * Top-k sparse decode (a cache built with `pageSummaries: true`): each sequence reads only `pages`
   * of its pages, or as many as `tokens` fills (at least 2). Every page is scored on the device with
   * the upper bound `sum_h sum_c max(q[h][c] * min[c], q[h][c] * max[c])` of its key summaries
   * (summed over all query heads: one page list serves the whole sequence); the first page
   * (attention sinks) and the last (recent, partial) are always kept, then the highest scores, ties
   * to the lower page; the decode then runs over the kept pages in order. With `pages` >= a
   * sequence's page count this is exactly the full decode. With label-channel summaries
   * ({@link PagedKVCacheOptions.pageSummaryChannels} r < headDim) the sum over c runs over the
   * layer's r label channels of each kv head only: no longer a bound of the logits but an estimate
   * reading r / headDim of the summary bytes. Decode only (no `queryCounts`), and not with `window`
   * or `alibiSlopes` (positions change when pages are skipped).
   */
  topK?: TopKBudget;
  /**
   * Block-sparse mask ({@link BlockSparseMask}, on q's device) over each sequence's new queries x
   * cached keys: query block `i` covers the sequence's query rows `[128 i, 128 i + 128)` (row 0 is its
   * first query, at position `length - count`) and key block `c` its cached tokens
   * `[128 c, 128 c + 128)`. A query visits only the keys of its block's listed key blocks, ANDed with
   * the other masks (causal, window). Grid: `ceil(max count / 128) x ceil(max length / 128)` over
   * `seqs` (lengths in `layer`, new tokens included), batch 1 or `seqs.length`, heads 1 or q's heads;
   * for one sequence the builders fit as they are, e.g.
   * `BlockSparseMask.radial({ seqLenQ: count, seqLenK: length, causal: true })`. Without
   * `queryCounts` (decode) the grid is `1 x ceil(max length / 128)`: each query reads only its
   * sequence's listed key blocks. On CUDA a masked call always runs the prefill kernel (the dense
   * forward reading K/V through the block table, no KV splits), so a masked decode of a few
   * sequences fills only part of the GPU. Not with `topK`, nor on a quantized cache.
   */
  blockMask?: BlockSparseMask;
}

/** How many pages {@link PagedAttentionOptions.topK} reads per sequence. */
export type TopKBudget = { pages: number } | { tokens: number };

const KEYS = ['causal', 'window', 'softcap', 'scale', 'alibiSlopes', 'queryCounts', 'out', 'returnLse', 'numSplits', 'topK', 'blockMask'] as const;

/**
 * Attention of `q` (`[tokens, heads, headDim]`) over the cached K/V of `seqs` in `layer`.
 * Causal by default (`causal: true`, bottom-right aligned), which for decode means "every cached token".
 * GQA: all query heads of a KV group share one read of the pages.
 *
 * On CUDA, decode and short prefills run the split-KV decode kernel; a prefill of a 16-bit cache
 * with at least 64 query rows per sequence on average whose 128-row query tiles x heads fill a
 * quarter of the GPU's SMs (and every call with `blockMask`) runs the FlashAttention-2 forward
 * kernel reading K/V through the block table.
 */
export function pagedAttention(
  q: Tensor,
  cache: PagedKVCache,
  layer: number,
  seqs: readonly number[],
  options: PagedAttentionOptions = {},
): { out: Tensor; lse: Tensor | null } {
  checkTensor(q, 'q');
  if (!(cache instanceof PagedKVCache)) throw new TypeError(`cache must be a PagedKVCache, got ${describe(cache)}`);
  checkInteger(layer, 'layer', 0, cache.layers - 1);
  if (!Array.isArray(seqs) || seqs.length === 0) throw new TypeError(`seqs must be a non-empty array of sequence ids, got ${describe(seqs)}`);
  const o = checkObject(options, 'options');
  checkKeys(o, KEYS, 'options');
  if (q.device !== cache.device || q.dtype !== cache.computeDtype) throw new RangeError(`q must be ${cache.computeDtype} on ${cache.device} like the cache, got ${q}`);
  if (q.ndim !== 3 || q.shape[2] !== cache.headDim) throw new RangeError(`q must be [tokens, heads, ${cache.headDim}], got [${q.shape}]`);
  if (q.strides[2] !== 1) throw new RangeError('q must be contiguous in its last dimension');
  const heads = q.shape[1];
  if (heads === 0 || heads % cache.kvHeads !== 0) throw new RangeError(`q heads (${heads}) must be a multiple of the cache's kv heads (${cache.kvHeads})`);
  selectKernel('pagedAttention', q.device, q.dtype, cache.headDim);

  const { rows, seqLens } = cache.batchInfo(seqs, layer, 'seqs');
  const score = scoreParams(o, cache.headDim, heads, 'options');
  if (o.causal === undefined) score.causal = true;
  // Object.assign, not a spread into a literal: V8 copies that one on a slow path (~2 us a call).
  const params: NativePagedAttentionOptions = Object.assign(score, {
    rows,
    seqLens,
    numSplits: o.numSplits === undefined ? 0 : checkInteger(o.numSplits, 'options.numSplits', 1, 1024),
  });
  if (o.topK !== undefined) {
    params.topKPages = topKPages(o.topK, cache.pageSize);
    if (!cache.summaries) throw new RangeError('options.topK needs a cache built with pageSummaries: true');
    if (o.queryCounts !== undefined) throw new RangeError('options.topK works for decode only (one query per sequence), not with options.queryCounts');
    if (o.window !== undefined || o.alibiSlopes !== undefined) throw new RangeError('options.topK cannot be combined with options.window or options.alibiSlopes (positions change when pages are skipped)');
    params.summaries = cache.summaries;
    if (cache.summaryChannels) params.summaryChannels = cache.summaryChannels;
  }
  const cuQ = queryOffsets(o.queryCounts, q.shape[0], seqs, seqLens, layer, "the query's K/V");
  if (cuQ) params.cuSeqlensQ = cuQ;
  if (o.blockMask !== undefined) params.blockMask = pagedBlockMask(o.blockMask, q, cache, seqs.length, cuQ, seqLens, o.topK !== undefined);
  let out: Tensor;
  if (o.out !== undefined) {
    out = checkTensor(o.out, 'options.out');
    if (out.device !== q.device || out.dtype !== q.dtype || out.shape.join() !== q.shape.join() || out.strides[2] !== 1)
      throw new RangeError(`options.out must match q (${q.dtype}, [${q.shape}], ${q.device}), got ${out}`);
  } else {
    out = Tensor.empty(q.shape, { dtype: q.dtype, device: q.device });
  }
  const returnLse = o.returnLse === undefined ? true : checkBoolean(o.returnLse, 'options.returnLse');
  const lse = returnLse ? Tensor.empty([q.shape[0], heads], { dtype: 'f32', device: q.device }) : null;
  native.pagedAttention(q, cache.pool, layer, cache.blockTable, out, lse, params, cache.scales, cache.kSmooth);
  return { out, lse };
}

/** Checks options.blockMask against the call: grid over the longest query run and cached length. */
function pagedBlockMask(value: unknown, q: Tensor, cache: PagedKVCache, batch: number, cuQ: Int32Array | undefined,
  seqLens: Int32Array, topK: boolean): NonNullable<NativePagedAttentionOptions['blockMask']> {
  let rowsQ = cuQ ? 0 : 1;
  if (cuQ) for (let i = 0; i < batch; i++) rowsQ = Math.max(rowsQ, cuQ[i + 1] - cuQ[i]);
  const mask = checkBlockMask(value, {
    device: q.device, batch, batchName: 'the number of sequences', heads: q.shape[1], rowsQ, rowsK: Math.max(...seqLens),
    rowsName: (nq, nk) => `${cuQ ? `${nq} query rows (the most of any sequence)` : 'one query per sequence'} x ${nk} cached keys (the longest)`,
  });
  if (topK) throw new RangeError('options.blockMask cannot be combined with options.topK');
  if (cache.quantized) throw new RangeError(`options.blockMask needs a 16/32-bit cache, not dtype ${cache.dtype}`);
  return mask;
}

function topKPages(value: unknown, pageSize: number): number {
  const t = checkObject(value, 'options.topK');
  const keys = Object.keys(t);
  if (keys.length !== 1 || (keys[0] !== 'pages' && keys[0] !== 'tokens'))
    throw new TypeError('options.topK must be { pages } or { tokens }');
  if (keys[0] === 'pages') return checkInteger(t.pages, 'options.topK.pages', 2, 2 ** 31 - 1);
  return Math.max(2, Math.floor(checkInteger(t.tokens, 'options.topK.tokens', 1, 2 ** 31 - 1) / pageSize));
}

/**
 * Query rows per sequence of a paged call: with `queryCounts`, their cumulative offsets (each count
 * at most the sequence's cached tokens, summing to q's rows); without, one query per sequence, each
 * sequence holding at least one token (`what` names what must be appended first). @internal
 */
export function queryOffsets(queryCounts: unknown, qRows: number, seqs: readonly number[], seqLens: Int32Array, layer: number,
  what: string): Int32Array | undefined {
  if (queryCounts === undefined) {
    if (qRows !== seqs.length) throw new RangeError(`q has ${qRows} tokens but ${seqs.length} sequences were given (one query each; use options.queryCounts for more)`);
    for (let i = 0; i < seqs.length; i++)
      if (seqLens[i] < 1) throw new RangeError(`sequence ${seqs[i]} has no tokens in layer ${layer}; append ${what} first`);
    return undefined;
  }
  if (!Array.isArray(queryCounts) || queryCounts.length !== seqs.length) throw new RangeError(`options.queryCounts must have one entry per sequence (${seqs.length})`);
  const cu = new Int32Array(seqs.length + 1);
  for (let i = 0; i < queryCounts.length; i++) {
    const c = checkInteger(queryCounts[i], `options.queryCounts[${i}]`);
    if (c > seqLens[i]) throw new RangeError(`options.queryCounts[${i}] = ${c} exceeds the ${seqLens[i]} tokens cached for sequence ${seqs[i]} in layer ${layer}`);
    cu[i + 1] = cu[i] + c;
  }
  if (cu[seqs.length] !== qRows) throw new RangeError(`options.queryCounts sum to ${cu[seqs.length]} but q has ${qRows} tokens`);
  return cu;
}
