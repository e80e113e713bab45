/**
 * Top-k sparse decode checks: the tests' own float64 page scoring and selection (the documented
 * rule of PagedAttentionOptions.topK) picks the pages, and the library's output must equal float64
 * attention over exactly those pages. Queries are redrawn until the selection is unambiguous (the
 * k-th and (k+1)-th scores differ clearly), so float32 rounding on either side cannot flip it.
 */
import { Device, DType, PagedKVCache, pagedAttention, Tensor } from '../../lib';
import { ShadowCache } from './paged';
import { lseRelL2, referenceAttention, relL2 } from './reference';

export interface TopKCacheOptions {
  layers?: number;
  kvHeads?: number;
  headDim?: number;
  pageSize?: number;
  capacityPages?: number;
  channels?: 8 | 16 | 32 | 'all';
  channelIndices?: number[][][];
}

export function makeTopKCache(device: Device, dtype: DType, o: TopKCacheOptions = {}): ShadowCache {
  return new ShadowCache(new PagedKVCache({
    layers: o.layers ?? 2, kvHeads: o.kvHeads ?? 2, headDim: o.headDim ?? 32, pageSize: o.pageSize ?? 8,
    capacityPages: o.capacityPages ?? 256, maxSequences: 16, dtype, device, pageSummaries: true,
    pageSummaryChannels: o.channels, pageSummaryChannelIndices: o.channelIndices,
  }));
}

/**
 * The documented label-channel rule in float64 over `rows` (the tokens of a layer's first append,
 * [kvHeads*dim] each): per kv head the r channels of largest mean |k|, ties to the lower channel,
 * ascending; null when the r-th and (r+1)-th sums are too close to call.
 */
export function expectedChannels(rows: number[][], kvHeads: number, dim: number, r: number): number[][] | null {
  const out: number[][] = [];
  for (let h = 0; h < kvHeads; h++) {
    const sums = Array.from({ length: dim }, (_, c) => rows.reduce((a, row) => a + Math.abs(row[h * dim + c]), 0));
    const order = sums.map((s, c) => [s, c]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    if (r < dim && order[r - 1][0] - order[r][0] < 1e-9 * Math.max(order[0][0], 1)) return null;
    out.push(order.slice(0, r).map(([, c]) => c).sort((a, b) => a - b));
  }
  return out;
}

/**
 * Pages (logical indices, ascending) the documented rule keeps for query q (heads x dim) of one
 * sequence, scoring over `channels[hk]` (null: every channel), or null if ambiguous.
 */
function selectPages(kRows: number[][], q: Float64Array, heads: number, kvHeads: number, dim: number, pageSize: number, k: number,
  channels: number[][] | null): number[] | null {
  const n = Math.ceil(kRows.length / pageSize);
  const all = Array.from({ length: n }, (_, p) => p);
  if (n <= k) return all;
  const group = heads / kvHeads;
  const scores: Array<[number, number]> = [];
  for (let p = 1; p < n - 1; p++) {
    let s = 0;
    for (let hk = 0; hk < kvHeads; hk++)
      for (const c of channels ? channels[hk] : Array.from({ length: dim }, (_, j) => j)) {
        let mn = Infinity;
        let mx = -Infinity;
        for (let t = p * pageSize; t < Math.min((p + 1) * pageSize, kRows.length); t++) {
          mn = Math.min(mn, kRows[t][hk * dim + c]);
          mx = Math.max(mx, kRows[t][hk * dim + c]);
        }
        for (let g = 0; g < group; g++) {
          const qc = q[(hk * group + g) * dim + c];
          s += Math.max(qc * mn, qc * mx);
        }
      }
    scores.push([s, p]);
  }
  scores.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const m = k - 2;
  const scale = Math.max(...scores.map(([s]) => Math.abs(s)), 1);
  if (m > 0 && m < scores.length && scores[m - 1][0] - scores[m][0] < 2e-5 * scale) return null;
  return [0, ...scores.slice(0, m).map(([, p]) => p).sort((a, b) => a - b), n - 1];
}

export interface TopKOptions {
  softcap?: number;
  scale?: number;
  causal?: boolean;
  numSplits?: number;
}

/**
 * Runs top-k decode (k pages) for seqs and returns the relative error against float64 attention
 * over exactly the pages the rule keeps, plus those pages.
 */
export async function checkTopK(shadow: ShadowCache, seqs: number[], layer: number, heads: number, k: number, o: TopKOptions = {}): Promise<{ err: number; pages: number[][] }> {
  const { headDim: D, kvHeads, pageSize, dtype, device } = shadow.cache;
  const channels = await shadow.cache.summaryChannelIndices(layer);
  for (let attempt = 0; attempt < 50; attempt++) {
    const q = Tensor.randn([seqs.length, heads, D], { dtype, device });
    const qh = Float64Array.from(await q.toArray());
    const pages = seqs.map((s, i) => selectPages(shadow.k.get(s)![layer], qh.subarray(i * heads * D, (i + 1) * heads * D), heads, kvHeads, D, pageSize, k, channels));
    if (pages.some((p) => p === null)) {
      q.dispose();
      continue;
    }
    const out = Tensor.full([seqs.length, heads, D], NaN, { dtype, device });
    const { lse } = pagedAttention(q, shadow.cache, layer, seqs, { ...o, out, topK: { pages: k } });
    const [oh, lh] = await Promise.all([out.toArray(), lse!.toArray()]);
    for (const t of [q, out, lse!]) t.dispose();
    const ref: number[] = [];
    const got: number[] = [];
    const refL: number[] = [];
    const gotL: number[] = [];
    seqs.forEach((s, i) => {
      const keep = pages[i]!;
      const kRows = shadow.k.get(s)![layer];
      const vRows = shadow.v.get(s)![layer];
      const rows = keep.flatMap((p) => Array.from({ length: Math.min(pageSize, kRows.length - p * pageSize) }, (_, t) => p * pageSize + t));
      const r = referenceAttention(
        { q: qh.subarray(i * heads * D, (i + 1) * heads * D), k: Float64Array.from(rows.flatMap((t) => kRows[t])), v: Float64Array.from(rows.flatMap((t) => vRows[t])), lenQ: 1, lenK: rows.length },
        { headsQ: heads, headsKv: kvHeads, dim: D, scale: o.scale ?? 1 / Math.sqrt(D), causal: o.causal ?? true, softcap: o.softcap },
      );
      for (const x of r.out) ref.push(x);
      for (const x of oh.subarray(i * heads * D, (i + 1) * heads * D)) got.push(x);
      for (let h = 0; h < heads; h++) {
        refL.push(r.lse[h]);
        gotL.push(lh[i * heads + h]);
      }
    });
    return { err: Math.max(relL2(got, ref), lseRelL2(gotL, refL) * 100), pages: pages as number[][] };
  }
  throw new Error('could not draw a query with an unambiguous page selection');
}

/**
 * Top-k decode with k >= a sequence's page count must give exactly the full decode for it (same
 * kernel, same pages). `rows` limits the comparison to those batch entries (the others have more
 * pages than k); pass numSplits then, as the automatic split count may differ between the calls.
 */
export async function topKMatchesFull(cache: PagedKVCache, seqs: number[], layer: number, heads: number, k: number, rows?: number[], numSplits?: number): Promise<boolean> {
  const q = Tensor.randn([seqs.length, heads, cache.headDim], { dtype: cache.dtype, device: cache.device });
  const full = pagedAttention(q, cache, layer, seqs, { numSplits });
  const sparse = pagedAttention(q, cache, layer, seqs, { topK: { pages: k }, numSplits });
  const [a, b, la, lb] = await Promise.all([full.out.toArray(), sparse.out.toArray(), full.lse!.toArray(), sparse.lse!.toArray()]);
  for (const t of [q, full.out, sparse.out, full.lse!, sparse.lse!]) t.dispose();
  const w = heads * cache.headDim;
  return (rows ?? seqs.map((_, i) => i)).every((r) => {
    for (let j = r * w; j < (r + 1) * w; j++) if (!Object.is(a[j], b[j])) return false;
    for (let h = r * heads; h < (r + 1) * heads; h++) if (!Object.is(la[h], lb[h])) return false;
    return true;
  });
}
