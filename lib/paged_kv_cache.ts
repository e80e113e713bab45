/** A paged KV cache: fixed-size pages in one device pool, per-sequence block tables, copy-on-write forks. */
import type { Device } from './device';
import { checkDType, DType, dtypeSize } from './dtype';
import { checkBoolean, checkInteger, checkKeys, checkObject, describe } from './errors';
import { native } from './native';
import { checkPageGeometry, PagedSequences, SequenceState } from './page_table';
import { checkTensor, Tensor } from './tensor';

/** Options of {@link PagedKVCache}. */
export interface PagedKVCacheOptions {
  /** Transformer layers sharing the page allocation (a page holds K and V of every layer). */
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Pages in the pool. */
  capacityPages: number;
  /** Tokens per page, a power of two up to 256 (default 16). */
  pageSize?: number;
  /** Live sequences at most (block-table rows; default 256). */
  maxSequences?: number;
  /** Tokens per sequence at most (default: the whole pool, capped at 131072). */
  maxSequenceLength?: number;
  /**
   * Storage type (default bf16 on CUDA, f32 on the CPU). `'fp8'` (= `'fp8e4m3'`) and `'int8'` make a
   * quantized cache: each appended (token, kv head) row of K and V is stored in 8 bits with one
   * float32 scale, after K has been smoothed (minus a per-(layer, kv head) mean) and, for int8,
   * both K and V channel-equalized (divided per channel by its max |.|), both set from the layer's
   * first append, so that outlier channels do not coarsen the others; attention dequantizes
   * inside the kernel (on CUDA the P·V product runs in f16: |v| must stay below 65504). Appended
   * K/V, queries and outputs then use {@link PagedKVCacheOptions.computeDtype}.
   */
  dtype?: DType | 'fp8';
  /** Element type of appended K/V, queries and outputs of a quantized cache (default bf16 on CUDA, f32 on the CPU). */
  computeDtype?: DType;
  /** Device of the pool (default: {@link defaultDevice}). */
  device?: Device;
  /**
   * Keep per-page key summaries (channel-wise min and max of K, per layer and kv head, maintained by
   * every append) so that `pagedAttention(..., { topK })` can read only the most relevant pages.
   * Costs `1 / pageSize` of the K/V memory with every channel summarized. Default false.
   */
  pageSummaries?: boolean;
  /**
   * Channels the page summaries cover (with `pageSummaries: true`). `'all'` (default): the min and
   * max of every channel, so the top-k page score is an upper bound of the page's attention logits
   * (Quest). 8, 16 or 32 (at most headDim): only that many label channels per (layer, kv head), as in
   * Double Sparsity, chosen at the layer's first append as the channels of largest mean |K| over
   * that append's tokens (ties to the lower channel; the sums are taken in float64 in a fixed order,
   * so the CPU and CUDA backends choose the same channels), unless
   * {@link PagedKVCacheOptions.pageSummaryChannelIndices} gives them. The score then bounds only the
   * dot product over those channels, an approximation of the full bound that reads `r / headDim` of
   * the summary bytes; summaries cost `r / (headDim * pageSize)` of the K/V memory.
   */
  pageSummaryChannels?: 8 | 16 | 32 | 'all';
  /**
   * Calibrated label channels instead of the first-append choice: `[layers][kvHeads][r]` distinct
   * channel indices in `[0, headDim)` (any order), `r` 8, 16 or 32 (it sets
   * {@link PagedKVCacheOptions.pageSummaryChannels}; if both are given they must agree).
   */
  pageSummaryChannelIndices?: readonly (readonly (readonly number[])[])[];
}

/** Page accounting returned by {@link PagedKVCache.usage}. */
export interface CacheUsage {
  capacityPages: number;
  usedPages: number;
  freePages: number;
  /** Pages referenced by more than one sequence (forked prefixes). */
  sharedPages: number;
  sequences: number;
  /** Tokens held, summed over sequences (a shared page counts for each sequence). */
  tokens: number;
  pageSize: number;
  /** Bytes of one page across all layers, K and V. */
  bytesPerPage: number;
  /** Bytes of the whole pool. */
  poolBytes: number;
}

const OPTION_KEYS = ['layers', 'kvHeads', 'headDim', 'capacityPages', 'pageSize', 'maxSequences', 'maxSequenceLength', 'dtype', 'computeDtype', 'device',
  'pageSummaries', 'pageSummaryChannels', 'pageSummaryChannelIndices'] as const;
const SUMMARY_CHANNEL_COUNTS: readonly number[] = [8, 16, 32];

/**
 * KV memory for many sequences in fixed-size pages, as in vLLM's PagedAttention.
 *
 * Pages are allocated on demand by {@link PagedKVCache.append}; {@link PagedKVCache.fork} shares every
 * page of a sequence by reference count and copies a shared page only when one side writes into it.
 * The block tables live on the device and change only when pages do, never with a host round trip
 * per step. Running out of pages throws a RangeError and leaves the cache unchanged.
 */
export class PagedKVCache extends PagedSequences implements Disposable {
  readonly kvHeads: number;
  readonly headDim: number;
  /** Storage type of the pages (`fp8e4m3` or `int8` when quantized). */
  readonly dtype: DType;
  /** Type of appended K/V, queries and outputs (= dtype unless quantized). */
  readonly computeDtype: DType;
  /** Whether pages hold 8-bit values with per-token scales. */
  readonly quantized: boolean;
  /** The page pool `[layers, 2, capacityPages, kvHeads, pageSize, headDim]`. @internal */
  readonly pool: Tensor;
  /** Quantized: f32 scales `[layers, 2, capacityPages, kvHeads, pageSize, 1]`. @internal */
  readonly scales: Tensor | null;
  /** Quantized: f32 channel vectors `[layers, 3 (K mean, K channel scale, V channel scale), kvHeads, headDim]`. @internal */
  readonly kSmooth: Tensor | null;
  private readonly smoothSet: boolean[];
  /**
   * Page key summaries `[layers, 2 (min, max), capacityPages, kvHeads, 1, headDim]` (the pool's
   * layout with one slot per page, so page copies move them alike), or null. @internal
   */
  readonly summaries: Tensor | null;
  /**
   * Label channels of the summaries, int32 `[layers, kvHeads, r]` (ascending per row), or null when
   * the summaries cover every channel. @internal
   */
  readonly summaryChannels: Tensor | null;
  /** Channels per (layer, kv head) the page summaries cover: a count, or `'all'` (also without summaries). */
  readonly pageSummaryChannels: number | 'all';
  private readonly channelsSet: boolean[];

  constructor(options: PagedKVCacheOptions) {
    const o = checkObject(options, 'options');
    checkKeys(o, OPTION_KEYS, 'options');
    const kvHeads = checkInteger(o.kvHeads, 'options.kvHeads', 1, 4096);
    const headDim = checkInteger(o.headDim, 'options.headDim', 1, 1024);
    super(checkPageGeometry(o, 'PagedKVCache', 16));
    this.kvHeads = kvHeads;
    this.headDim = headDim;
    const fallback: DType = this.device === 'cpu' ? 'f32' : 'bf16';
    this.dtype = o.dtype === undefined ? fallback : o.dtype === 'fp8' ? 'fp8e4m3' : checkDType(o.dtype, 'options.dtype');
    if (!['f32', 'f16', 'bf16', 'fp8e4m3', 'int8'].includes(this.dtype))
      throw new RangeError(`options.dtype must be f32, f16, bf16, fp8 (fp8e4m3) or int8, got ${this.dtype}`);
    this.quantized = this.dtype === 'fp8e4m3' || this.dtype === 'int8';
    const compute = o.computeDtype === undefined ? (this.quantized ? fallback : this.dtype) : checkDType(o.computeDtype, 'options.computeDtype');
    if (this.quantized ? !['f32', 'f16', 'bf16'].includes(compute) : compute !== this.dtype)
      throw new RangeError(`options.computeDtype must be f32, f16 or bf16 (and equal dtype unless dtype is fp8 or int8), got ${compute}`);
    this.computeDtype = compute;

    this.pool = this.allocatePages(() => Tensor.empty([this.layers, 2, this.capacityPages, this.kvHeads, this.pageSize, this.headDim], { dtype: this.dtype, device: this.device }));
    this.scales = this.quantized
      ? this.allocatePages(() => Tensor.full([this.layers, 2, this.capacityPages, this.kvHeads, this.pageSize, 1], 0, { dtype: 'f32', device: this.device }))
      : null;
    this.kSmooth = this.quantized ? Tensor.full([this.layers, 3, this.kvHeads, this.headDim], 1, { dtype: 'f32', device: this.device }) : null;
    this.smoothSet = new Array<boolean>(this.layers).fill(false);
    const summaries = o.pageSummaries === undefined ? false : checkBoolean(o.pageSummaries, 'options.pageSummaries');
    if (summaries && this.quantized) throw new RangeError(`options.pageSummaries needs a 16/32-bit cache, not dtype ${this.dtype}`);
    const { count, indices } = summaryChannelOptions(o, summaries, this.layers, kvHeads, headDim);
    this.pageSummaryChannels = count;
    const width = count === 'all' ? this.headDim : count;
    this.summaries = summaries
      ? this.allocatePages(() => Tensor.empty([this.layers, 2, this.capacityPages, this.kvHeads, 1, width], { dtype: this.dtype, device: this.device }))
      : null;
    this.summaryChannels = null;
    if (summaries && count !== 'all') {
      this.summaryChannels = indices
        ? Tensor.fromArray(indices, [this.layers, this.kvHeads, count], { dtype: 'int32', device: this.device })
        : Tensor.full([this.layers, this.kvHeads, count], 0, { dtype: 'int32', device: this.device });
    }
    this.channelsSet = new Array<boolean>(this.layers).fill(indices !== null);
  }

  /**
   * The label channels the page summaries of `layer` cover, `[kvHeads][r]` ascending, or null when
   * they cover every channel (or the cache has no summaries) or the layer has had no tokens yet.
   */
  async summaryChannelIndices(layer: number): Promise<number[][] | null> {
    this.checkLive();
    checkInteger(layer, 'layer', 0, this.layers - 1);
    if (!this.summaryChannels || !this.channelsSet[layer]) return null;
    const r = this.pageSummaryChannels as number;
    const all = await this.summaryChannels.toArray();
    return Array.from({ length: this.kvHeads }, (_, h) => Array.from(all.subarray((layer * this.kvHeads + h) * r, (layer * this.kvHeads + h + 1) * r)));
  }

  /**
   * Appends new tokens' K and V (`[tokens, kvHeads, headDim]`, the cache's compute dtype and device) to
   * `layer` of one sequence, or of several at once with `counts[i]` tokens for `seq[i]` (rows in
   * order). One fused kernel writes all of them into their pages.
   */
  append(seq: number | readonly number[], layer: number, k: Tensor, v: Tensor, counts?: readonly number[]): void {
    this.checkLive();
    const states = this.table.appendStates(seq);
    checkInteger(layer, 'layer', 0, this.layers - 1);
    this.checkNewRows(k, 'k');
    this.checkNewRows(v, 'v');
    if (v.shape[0] !== k.shape[0]) throw new RangeError(`v has ${v.shape[0]} tokens, k ${k.shape[0]}`);
    let n: number[];
    if (counts === undefined) {
      if (states.length !== 1) throw new TypeError('counts is required when appending to several sequences');
      n = [k.shape[0]];
    } else {
      if (!Array.isArray(counts) || counts.length !== states.length) throw new RangeError(`counts must have one entry per sequence (${states.length})`);
      // One pass, the name built only for the error: this runs per layer per decode step.
      n = new Array<number>(counts.length);
      let total = 0;
      for (let i = 0; i < counts.length; i++) {
        const c = counts[i];
        n[i] = Number.isSafeInteger(c) && c >= 0 ? c : checkInteger(c, `counts[${i}]`);
        total += n[i];
      }
      if (total !== k.shape[0]) throw new RangeError(`counts sum to ${total} but k has ${k.shape[0]} tokens`);
    }

    // Plan first (the table throws before changing anything when the pool runs out).
    const plan = this.table.planAppend(states, layer, n);
    if (plan.copySrc.length) {
      const pairs = { src: plan.copySrc, dst: plan.copyDst };
      native.copyPages(this.pool, pairs);
      if (this.summaries) native.copyPages(this.summaries, pairs);
      if (this.scales) native.copyPages(this.scales, pairs);
    }
    const initSmoothing = this.quantized && !this.smoothSet[layer] && plan.cuNew[states.length] > 0;
    this.table.enqueueAppend(plan, () => native.pagedAppend(this.pool, layer, k, v, this.blockTable, {
      rows: plan.rows,
      cuNew: plan.cuNew,
      startPos: plan.startPos,
      initSmoothing,
      tableIdx: plan.tableIdx,
      tablePages: plan.tablePages,
    }, this.scales, this.kSmooth));
    if (initSmoothing) this.smoothSet[layer] = true;
    if (this.summaryChannels && !this.channelsSet[layer] && plan.cuNew[states.length] > 0) {
      // Label channels from this first append's tokens, before its pages are summarized.
      native.pagedChooseChannels(k, this.summaryChannels, layer);
      this.channelsSet[layer] = true;
    }
    if (this.summaries) this.summarize(states, layer, n);
    this.table.commit(plan, layer);
  }

  // New K or V rows of an append: a tensor of the cache's compute dtype and device, [tokens, kvHeads,
  // headDim], contiguous in its last dimension.
  private checkNewRows(t: Tensor, name: string): void {
    checkTensor(t, name);
    if (t.device !== this.device || t.dtype !== this.computeDtype)
      throw new RangeError(`${name} must be ${this.computeDtype} on ${this.device} like the cache, got ${t}`);
    if (t.ndim !== 3 || t.shape[1] !== this.kvHeads || t.shape[2] !== this.headDim)
      throw new RangeError(`${name} must be [tokens, ${this.kvHeads}, ${this.headDim}], got [${t.shape}]`);
    if (t.strides[2] !== 1) throw new RangeError(`${name} must be contiguous in its last dimension`);
  }

  /** Page accounting. */
  usage(): CacheUsage {
    const c = this.table.counts();
    const scaleBytes = this.quantized ? 4 : 0;  // one f32 scale per (token, kv head)
    const bytesPerPage = this.layers * 2 * this.kvHeads * this.pageSize * (this.headDim * dtypeSize(this.dtype) + scaleBytes);
    return {
      capacityPages: this.capacityPages, usedPages: c.used, freePages: c.free, sharedPages: c.shared,
      sequences: c.sequences, tokens: c.tokens, pageSize: this.pageSize, bytesPerPage, poolBytes: bytesPerPage * this.capacityPages,
    };
  }

  /** Frees the pool and the block tables. */
  dispose(): void {
    this.pool.dispose();
    this.scales?.dispose();
    this.kSmooth?.dispose();
    this.table.dispose();
    this.summaries?.dispose();
    this.summaryChannels?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  protected checkLive(): void {
    if (this.pool.disposed) throw new TypeError('the PagedKVCache has been disposed');
  }

  /** Updates the summaries of the pages an append of n[i] tokens to states[i] (lengths not yet advanced) wrote. */
  private summarize(states: readonly SequenceState[], layer: number, n: readonly number[]): void {
    const ps = this.pageSize;
    const rows: number[] = [];
    const logical: number[] = [];
    const slotBegin: number[] = [];
    const slotEnd: number[] = [];
    states.forEach((s, i) => {
      if (n[i] === 0) return;
      const start = s.lengths[layer];
      const end = start + n[i];
      for (let p = Math.floor(start / ps); p * ps < end; p++) {
        rows.push(s.row);
        logical.push(p);
        slotBegin.push(Math.max(start - p * ps, 0));
        slotEnd.push(Math.min(end - p * ps, ps));
      }
    });
    native.pagedSummarize(this.pool, this.summaries!, layer, this.blockTable, {
      rows: Int32Array.from(rows), logical: Int32Array.from(logical), slotBegin: Int32Array.from(slotBegin), slotEnd: Int32Array.from(slotEnd),
    }, this.summaryChannels);
  }
}

/**
 * Validates pageSummaryChannels / pageSummaryChannelIndices: the channel count ('all' or 8, 16,
 * 32 <= headDim) and, when given, the indices flattened [layers, kvHeads, r], ascending per row.
 */
function summaryChannelOptions(o: Record<string, unknown>, summaries: boolean, layers: number, kvHeads: number, headDim: number):
  { count: number | 'all'; indices: Int32Array | null } {
  let count: number | 'all' = 'all';
  if (o.pageSummaryChannels !== undefined) {
    const c = o.pageSummaryChannels;
    if (c !== 'all') {
      if (typeof c !== 'number') throw new TypeError(`options.pageSummaryChannels must be 8, 16, 32 or 'all', got ${describe(c)}`);
      if (!SUMMARY_CHANNEL_COUNTS.includes(c)) throw new RangeError(`options.pageSummaryChannels must be 8, 16, 32 or 'all', got ${c}`);
      if (c > headDim) throw new RangeError(`options.pageSummaryChannels (${c}) exceeds headDim (${headDim})`);
      count = c;
    }
    if (!summaries) throw new RangeError('options.pageSummaryChannels needs pageSummaries: true');
  }
  if (o.pageSummaryChannelIndices === undefined) return { count, indices: null };
  const name = 'options.pageSummaryChannelIndices';
  if (!summaries) throw new RangeError(`${name} needs pageSummaries: true`);
  const perLayer = o.pageSummaryChannelIndices;
  if (!Array.isArray(perLayer)) throw new TypeError(`${name} must be an array [layers][kvHeads][channels], got ${describe(perLayer)}`);
  if (perLayer.length !== layers) throw new RangeError(`${name} must have one entry per layer (${layers}), got ${perLayer.length}`);
  let r = 0;
  const out: number[] = [];
  perLayer.forEach((heads: unknown, l) => {
    if (!Array.isArray(heads)) throw new TypeError(`${name}[${l}] must be an array of ${kvHeads} channel lists, got ${describe(heads)}`);
    if (heads.length !== kvHeads) throw new RangeError(`${name}[${l}] must have one entry per kv head (${kvHeads}), got ${heads.length}`);
    heads.forEach((list: unknown, h) => {
      const where = `${name}[${l}][${h}]`;
      if (!Array.isArray(list)) throw new TypeError(`${where} must be an array of channel indices, got ${describe(list)}`);
      if (r === 0) {
        r = list.length;
        if (!SUMMARY_CHANNEL_COUNTS.includes(r)) throw new RangeError(`${where} lists ${r} channels; 8, 16 or 32 are supported`);
        if (r > headDim) throw new RangeError(`${where} lists ${r} channels, more than headDim (${headDim})`);
        if (count !== 'all' && count !== r) throw new RangeError(`${where} lists ${r} channels but options.pageSummaryChannels is ${count}`);
        if (o.pageSummaryChannels === 'all') throw new RangeError(`${name} cannot be combined with pageSummaryChannels: 'all'`);
      } else if (list.length !== r) {
        throw new RangeError(`${where} lists ${list.length} channels, the first list ${r}: every list must have the same length`);
      }
      const sorted = list.map((c: unknown, j) => checkInteger(c, `${where}[${j}]`, 0, headDim - 1)).sort((a, b) => a - b);
      for (let j = 1; j < r; j++) if (sorted[j] === sorted[j - 1]) throw new RangeError(`${where} lists channel ${sorted[j]} twice`);
      out.push(...sorted);
    });
  });
  return { count: r, indices: Int32Array.from(out) };
}
