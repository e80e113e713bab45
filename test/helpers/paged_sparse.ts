/**
 * Paged attention with a block mask against float64 dense attention on the gathered K/V (the
 * ShadowCache's host copy) with the explicit element mask. The grid reading here is the tests' own
 * of the documented rule (lib/paged_attention.ts, blockMask): query block i = the sequence's query
 * rows [128 i, 128 i + 128), key block c = its cached keys [128 c, 128 c + 128).
 */
import { attention, BlockSparseMask, pagedAttention, PagedAttentionOptions, Tensor } from '../../lib';
import { ShadowCache } from './paged';
import { lseRelL2, referenceAttention, relL2 } from './reference';
import { BLOCK, randomGrid } from './sparse';

/** A dense block grid [batch][heads][numQBlocks][numKBlocks], 1 = visit. */
export interface MaskGrid {
  cells: Uint8Array;
  batch: number;
  heads: number;
  numQBlocks: number;
  numKBlocks: number;
}

/** The grid a paged call needs: ceil(longest query run / 128) x ceil(longest cached length / 128), at least 1 x 1. */
export function pagedGridShape(counts: readonly number[], lens: readonly number[]): { numQBlocks: number; numKBlocks: number } {
  return { numQBlocks: Math.max(1, Math.ceil(Math.max(...counts) / BLOCK)), numKBlocks: Math.max(1, Math.ceil(Math.max(...lens) / BLOCK)) };
}

/** A fresh random grid for a paged call, about `density` of the cells set. */
export function randomPagedGrid(counts: readonly number[], lens: readonly number[], batch: number, heads: number, density: number): MaskGrid {
  const { numQBlocks, numKBlocks } = pagedGridShape(counts, lens);
  return { cells: randomGrid(batch * heads * numQBlocks * numKBlocks, density), batch, heads, numQBlocks, numKBlocks };
}

export interface MaskedCheck {
  /** Relative L2 error of the output over the compared rows. */
  errOut: number;
  /** Relative L2 error of the finite lse values. */
  errLse: number;
  /** A row that sees no key must have lse -inf and output 0, and only such rows. */
  emptyRowsOk: boolean;
  /** Every output element was written (the output starts as NaN). */
  allWritten: boolean;
  /** Rows compared (of the total). */
  rows: number;
  /**
   * With `dense`: relative L2 distance of the whole output (every row) and of the lse from dense
   * `attention()` on the gathered K/V (varlen, same mask), an independent path through contiguous
   * tensors; NaN without.
   */
  errDense: number;
  errDenseLse: number;
}

export interface MaskedOptions {
  /** Score options and queryCounts (no out / blockMask: the check sets them). */
  options?: Omit<PagedAttentionOptions, 'out' | 'blockMask'>;
  /** The mask as a dense grid, or a prebuilt mask with its grid (e.g. from a builder); none: unmasked. */
  grid?: MaskGrid;
  mask?: BlockSparseMask;
  /** Compare only this many rows per sequence (evenly spread, first and last included); default all. */
  sampleRows?: number;
  /** Also run dense attention() on the gathered K/V and compare every row (see MaskedCheck.errDense). */
  dense?: boolean;
}

/** Runs pagedAttention on fresh random q with the mask and measures it against float64. */
export async function checkMasked(shadow: ShadowCache, seqs: number[], layer: number, heads: number, m: MaskedOptions = {}): Promise<MaskedCheck> {
  const { headDim: D, computeDtype: dtype, device, kvHeads } = shadow.cache;
  const options = m.options ?? {};
  const counts = options.queryCounts ?? seqs.map(() => 1);
  const total = counts.reduce((a, b) => a + b, 0);
  const q = Tensor.randn([total, heads, D], { dtype, device });
  const out = Tensor.full([total, heads, D], NaN, { dtype, device });
  const mask = m.mask ?? (m.grid ? BlockSparseMask.fromDense(m.grid.cells, { batch: m.grid.batch, heads: m.grid.heads, numQBlocks: m.grid.numQBlocks, numKBlocks: m.grid.numKBlocks }, { device }) : undefined);
  const { lse } = pagedAttention(q, shadow.cache, layer, seqs, { ...options, out, blockMask: mask });
  const [qh, oh, lh] = await Promise.all([q.toArray(), out.toArray(), lse!.toArray()]);
  let errDense = NaN;
  let errDenseLse = NaN;
  if (m.dense) [errDense, errDenseLse] = await denseDistance(shadow, seqs, layer, q, oh, lh, counts, options, mask);
  for (const t of [q, out, lse!]) t.dispose();
  if (!m.mask) mask?.dispose();

  const grid = m.grid;
  const ref: number[] = [];
  const got: number[] = [];
  const refL: number[] = [];
  const gotL: number[] = [];
  let emptyRowsOk = true;
  let compared = 0;
  let row = 0;
  seqs.forEach((s, b) => {
    const kRows = shadow.k.get(s)![layer];
    const vRows = shadow.v.get(s)![layer];
    const nq = counts[b];
    const rows = sampleRows(nq, m.sampleRows);
    compared += rows.length;
    const mb = grid && grid.batch !== 1 ? b : 0;
    const r = referenceAttention(
      {
        q: Float64Array.from(qh.subarray(row * heads * D, (row + nq) * heads * D)),
        k: Float64Array.from(kRows.flat()),
        v: Float64Array.from(vRows.flat()),
        lenQ: nq,
        lenK: kRows.length,
      },
      {
        headsQ: heads, headsKv: kvHeads, dim: D, scale: options.scale ?? 1 / Math.sqrt(D),
        causal: options.causal ?? true, windowLeft: options.window?.[0], windowRight: options.window?.[1],
        softcap: options.softcap, alibiSlopes: options.alibiSlopes, rows,
        keyMask: grid
          ? (h, i, j) => {
            const mh = grid.heads === 1 ? 0 : h;
            return grid.cells[((mb * grid.heads + mh) * grid.numQBlocks + Math.floor(i / BLOCK)) * grid.numKBlocks + Math.floor(j / BLOCK)] === 1;
          }
          : undefined,
      },
    );
    for (const i of rows)
      for (let h = 0; h < heads; h++) {
        const at = ((row + i) * heads + h) * D;
        for (let c = 0; c < D; c++) {
          ref.push(r.out[(i * heads + h) * D + c]);
          got.push(oh[at + c]);
        }
        const want = r.lse[h * nq + i];
        const have = lh[(row + i) * heads + h];
        if (want === -Infinity) {
          if (have !== -Infinity) emptyRowsOk = false;
          for (let c = 0; c < D; c++) if (oh[at + c] !== 0) emptyRowsOk = false;
        } else if (have === -Infinity) {
          emptyRowsOk = false;
        } else {
          refL.push(want);
          gotL.push(have);
        }
      }
    row += nq;
  });
  let allWritten = true;
  for (let i = 0; i < oh.length; i++) if (Number.isNaN(oh[i])) allWritten = false;
  return { errOut: relL2(got, ref), errLse: lseRelL2(gotL, refL), emptyRowsOk, allWritten, rows: compared, errDense, errDenseLse };
}

/** Distance of a paged result (host out [tokens, heads, dim], lse [tokens, heads]) from varlen attention() on the gathered K/V. */
async function denseDistance(shadow: ShadowCache, seqs: number[], layer: number, q: Tensor, oh: ArrayLike<number>, lh: ArrayLike<number>,
  counts: readonly number[], options: Omit<PagedAttentionOptions, 'out' | 'blockMask'>, mask: BlockSparseMask | undefined): Promise<[number, number]> {
  const { kvHeads, headDim: D, computeDtype: dtype, device } = shadow.cache;
  const rows = seqs.flatMap((s) => shadow.k.get(s)![layer]);
  const k = Tensor.fromArray(Float32Array.from(rows.flat()), [rows.length, kvHeads, D], { dtype, device });
  const vRows = seqs.flatMap((s) => shadow.v.get(s)![layer]);
  const v = Tensor.fromArray(Float32Array.from(vRows.flat()), [vRows.length, kvHeads, D], { dtype, device });
  const cum = (xs: readonly number[]): number[] => xs.reduce((a, x) => [...a, a[a.length - 1] + x], [0]);
  const { queryCounts: _counts, numSplits: _splits, returnLse: _lse, topK: _topK, ...score } = options;
  const r = attention(q, k, v, {
    ...score, causal: options.causal ?? true, blockMask: mask,
    cuSeqlensQ: cum(counts), cuSeqlensK: cum(seqs.map((s) => shadow.k.get(s)![layer].length)),
  });
  const [dh, dl] = await Promise.all([r.out.toArray(), r.lse!.toArray()]);
  for (const t of [k, v, r.out, r.lse!]) t.dispose();
  // Dense lse is [heads, totalQ]; paged lse is [totalQ, heads]. Rows that see no key are -inf in both.
  const heads = q.shape[1];
  const total = q.shape[0];
  const a: number[] = [];
  const b: number[] = [];
  let mismatch = false;
  for (let t = 0; t < total; t++)
    for (let h = 0; h < heads; h++) {
      const x = lh[t * heads + h];
      const y = dl[h * total + t];
      if (x === -Infinity || y === -Infinity) mismatch ||= x !== y;
      else {
        a.push(x);
        b.push(y);
      }
    }
  return [relL2(oh, dh), mismatch ? Infinity : lseRelL2(a, b)];
}

/** `n` rows of [0, count) evenly spread, first and last included (all of them when n is absent or >= count). */
export function sampleRows(count: number, n?: number): number[] {
  if (n === undefined || n >= count) return Array.from({ length: count }, (_, i) => i);
  const rows = new Set<number>();
  for (let k = 0; k < n; k++) rows.add(Math.round((k * (count - 1)) / Math.max(1, n - 1)));
  return [...rows].sort((a, b) => a - b);
}
