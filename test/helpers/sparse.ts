/**
 * Block-sparse attention cases: the library's blockMask run against float64 dense attention with
 * the equivalent explicit element mask. The block patterns here are the tests' own reading of the
 * documented rules (lib/block_sparse.ts), written without the library's code.
 */
import { attention, AttentionOptions, BlockSparseMask, Device, DType, ScoreOptions, Tensor } from '../../lib';
import { cumsum, TOLERANCE } from './cases';
import { lseRelL2, referenceAttention, relL2 } from './reference';

/** Rows and keys of one mask block. */
export const BLOCK = 128;

export interface SparseCase {
  batch: number;
  lenQ: number[];
  lenK: number[];
  headsQ: number;
  headsKv: number;
  dim: number;
  varlen?: boolean;
  /** Mask grid [maskBatch][maskHeads][numQBlocks][numKBlocks], 1 = visit. */
  grid: Uint8Array;
  maskBatch: number;
  maskHeads: number;
  numQBlocks: number;
  numKBlocks: number;
  options?: ScoreOptions;
}

/** A fresh random grid with about `density` of the cells set. */
export function randomGrid(cells: number, density: number): Uint8Array {
  return Uint8Array.from({ length: cells }, () => (Math.random() < density ? 1 : 0));
}

/** Key blocks of query block i's diagonal (query row r at key r + offset), inclusive. */
export function diagonal(i: number, offset: number, lenQ: number): [number, number] {
  const first = i * BLOCK + offset;
  const last = Math.min(i * BLOCK + BLOCK, lenQ) - 1 + offset;
  return [Math.floor(first / BLOCK), Math.floor(last / BLOCK)];
}

/** The sliding-window-with-sinks rule, one (batch, head) entry. */
export function slidingGrid(lenQ: number, lenK: number, window: number, sinks: number, causal: boolean): Uint8Array {
  const nq = Math.ceil(lenQ / BLOCK);
  const nk = Math.ceil(lenK / BLOCK);
  const g = new Uint8Array(nq * nk);
  for (let i = 0; i < nq; i++) {
    const [lo, hi] = diagonal(i, lenK - lenQ, lenQ);
    for (let c = 0; c < nk; c++) {
      let keep = c < sinks || (c >= lo - window && c <= hi + (causal ? 0 : window));
      if (causal && c > hi) keep = false;
      g[i * nk + c] = keep ? 1 : 0;
    }
  }
  return g;
}

/** The radial rule: dense within `band` blocks of the diagonal, then every 2^s-th block. */
export function radialGrid(lenQ: number, lenK: number, band: number, sinks: number, causal: boolean): Uint8Array {
  const nq = Math.ceil(lenQ / BLOCK);
  const nk = Math.ceil(lenK / BLOCK);
  const g = new Uint8Array(nq * nk);
  for (let i = 0; i < nq; i++) {
    const [lo, hi] = diagonal(i, lenK - lenQ, lenQ);
    for (let c = 0; c < nk; c++) {
      const dist = c < lo ? lo - c : c > hi ? c - hi : 0;
      // smallest s >= 1 with dist <= band * 2^s
      const s = Math.max(1, Math.ceil(Math.log2(dist / band)));
      let keep = c < sinks || dist <= band || c % 2 ** s === 0;
      if (causal && c > hi) keep = false;
      g[i * nk + c] = keep ? 1 : 0;
    }
  }
  return g;
}

export interface SparseResult {
  errOut: number;
  errLse: number;
  tolerance: number;
}

/** Runs one case with blockMask on `device` and measures the error against float64 with the explicit mask. */
export async function runSparseCase(c: SparseCase, dtype: DType, device: Device): Promise<SparseResult> {
  const D = c.dim;
  const make = (lens: number[], heads: number): Tensor =>
    c.varlen
      ? Tensor.randn([lens.reduce((a, b) => a + b, 0), heads, D], { dtype, device })
      : Tensor.randn([c.batch, lens[0], heads, D], { dtype, device });
  const q = make(c.lenQ, c.headsQ);
  const k = make(c.lenK, c.headsKv);
  const v = make(c.lenK, c.headsKv);
  const out = Tensor.full(q.shape, NaN, { dtype, device });
  const mask = BlockSparseMask.fromDense(c.grid, { batch: c.maskBatch, heads: c.maskHeads, numQBlocks: c.numQBlocks, numKBlocks: c.numKBlocks }, { device });
  const opts: AttentionOptions = { ...c.options, out, blockMask: mask };
  const cuQ = cumsum(c.lenQ);
  const cuK = cumsum(c.lenK);
  if (c.varlen) {
    opts.cuSeqlensQ = cuQ;
    opts.cuSeqlensK = cuK;
  }
  const { lse } = attention(q, k, v, opts);
  const [qh, kh, vh, oh, lh] = await Promise.all([q.toArray(), k.toArray(), v.toArray(), out.toArray(), lse!.toArray()]);
  for (const t of [q, k, v, out, lse!]) t.dispose();
  mask.dispose();

  const totalQ = cuQ[cuQ.length - 1];
  const ref: number[] = [];
  const got: number[] = [];
  const refL: number[] = [];
  const gotL: number[] = [];
  let lseMismatch = false;
  for (let b = 0; b < c.batch; b++) {
    const [Lq, Lk] = [c.lenQ[b], c.lenK[b]];
    const rowQ = c.varlen ? cuQ[b] : b * Lq;
    const rowK = c.varlen ? cuK[b] : b * Lk;
    const mb = c.maskBatch === 1 ? 0 : b;
    const r = referenceAttention(
      {
        q: Float64Array.from(qh.subarray(rowQ * c.headsQ * D, (rowQ + Lq) * c.headsQ * D)),
        k: Float64Array.from(kh.subarray(rowK * c.headsKv * D, (rowK + Lk) * c.headsKv * D)),
        v: Float64Array.from(vh.subarray(rowK * c.headsKv * D, (rowK + Lk) * c.headsKv * D)),
        lenQ: Lq,
        lenK: Lk,
      },
      {
        headsQ: c.headsQ, headsKv: c.headsKv, dim: D, scale: c.options?.scale ?? 1 / Math.sqrt(D),
        causal: c.options?.causal, windowLeft: c.options?.window?.[0], windowRight: c.options?.window?.[1],
        softcap: c.options?.softcap, alibiSlopes: c.options?.alibiSlopes,
        keyMask: (h, i, j) => {
          const mh = c.maskHeads === 1 ? 0 : h;
          const cell = ((mb * c.maskHeads + mh) * c.numQBlocks + Math.floor(i / BLOCK)) * c.numKBlocks + Math.floor(j / BLOCK);
          return c.grid[cell] === 1;
        },
      },
    );
    for (const x of r.out) ref.push(x);
    for (const x of oh.subarray(rowQ * c.headsQ * D, (rowQ + Lq) * c.headsQ * D)) got.push(x);
    for (let h = 0; h < c.headsQ; h++)
      for (let i = 0; i < Lq; i++) {
        const want = r.lse[h * Lq + i];
        const have = c.varlen ? lh[h * totalQ + rowQ + i] : lh[(b * c.headsQ + h) * Lq + i];
        if (want === -Infinity) {
          if (have !== -Infinity) lseMismatch = true;
        } else {
          refL.push(want);
          gotL.push(have);
        }
      }
  }
  return { errOut: relL2(got, ref), errLse: lseMismatch ? Infinity : lseRelL2(gotL, refL), tolerance: TOLERANCE[dtype] };
}

/** The shared case list: dense and varlen shapes, per-head and broadcast masks, composed options. */
export function sparseCases(dim: number): Array<[string, SparseCase]> {
  const nb = (len: number): number => Math.ceil(len / BLOCK);
  const dense = (batch: number, lq: number, lk: number, hq: number, hkv: number, maskBatch: number, maskHeads: number, grid: Uint8Array | number, options: ScoreOptions = {}): SparseCase => {
    const cells = maskBatch * maskHeads * nb(lq) * nb(lk);
    return {
      batch, lenQ: Array(batch).fill(lq), lenK: Array(batch).fill(lk), headsQ: hq, headsKv: hkv, dim,
      grid: typeof grid === 'number' ? randomGrid(cells, grid) : grid,
      maskBatch, maskHeads, numQBlocks: nb(lq), numKBlocks: nb(lk), options,
    };
  };
  return [
    [`d${dim} random 50%, per batch and head`, dense(2, 300, 300, 2, 2, 2, 2, 0.5)],
    [`d${dim} random 30%, broadcast, GQA 4:1`, dense(1, 260, 520, 4, 1, 1, 1, 0.3)],
    [`d${dim} random + causal, q shorter than k`, dense(1, 200, 450, 2, 2, 1, 2, 0.6, { causal: true })],
    [`d${dim} random + causal, q longer than k`, dense(1, 400, 150, 2, 1, 1, 1, 0.7, { causal: true })],
    [`d${dim} random + window + softcap`, dense(1, 390, 390, 2, 2, 1, 1, 0.5, { window: [150, 40], softcap: 4 })],
    [`d${dim} random + alibi + scale`, dense(1, 257, 257, 2, 2, 1, 2, 0.5, { alibiSlopes: [0.02, 0.004], scale: 0.8 })],
    [`d${dim} sliding window + sinks, causal`, dense(1, 700, 700, 2, 2, 1, 1, slidingGrid(700, 700, 1, 1, true), { causal: true })],
    [`d${dim} sliding window + sinks, bidirectional`, dense(1, 520, 640, 2, 2, 1, 1, slidingGrid(520, 640, 1, 1, false))],
    [`d${dim} radial, causal`, dense(1, 1100, 1100, 2, 1, 1, 1, radialGrid(1100, 1100, 1, 0, true), { causal: true })],
    [`d${dim} empty rows (nothing listed)`, dense(1, 260, 260, 2, 2, 1, 1, Uint8Array.from([1, 0, 1, 0, 0, 0, 0, 1, 1]))],
    [`d${dim} varlen, per sequence`, {
      batch: 3, lenQ: [300, 0, 130], lenK: [260, 64, 400], headsQ: 2, headsKv: 1, dim, varlen: true,
      grid: randomGrid(3 * 2 * 3 * 4, 0.6), maskBatch: 3, maskHeads: 2, numQBlocks: 3, numKBlocks: 4, options: { causal: true },
    }],
  ];
}
