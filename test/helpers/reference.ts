/**
 * Plain float64 attention written independently of the library: the oracle every test trusts.
 * Inputs are row-major arrays of doubles in [tokens, heads, dim] per sequence.
 */

export interface RefSeq {
  /** [lenQ][headsQ][dim] flattened */
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  lenQ: number;
  lenK: number;
}

export interface RefOptions {
  headsQ: number;
  headsKv: number;
  dim: number;
  scale: number;
  causal?: boolean;
  windowLeft?: number;
  windowRight?: number;
  softcap?: number;
  alibiSlopes?: ArrayLike<number>;
  /** Extra element mask (e.g. a block-sparse pattern): key j visible to query i of head h only if true. */
  keyMask?: (h: number, i: number, j: number) => boolean;
  /** Compute only these query rows (long cases subsample); the others keep out 0 and lse NaN. */
  rows?: readonly number[];
}

/** Returns out [lenQ][headsQ][dim] and lse [headsQ][lenQ] for one sequence. */
export function referenceAttention(seq: RefSeq, o: RefOptions): { out: Float64Array; lse: Float64Array } {
  const { headsQ, headsKv, dim } = o;
  const out = new Float64Array(seq.lenQ * headsQ * dim);
  const lse = new Float64Array(headsQ * seq.lenQ).fill(o.rows ? NaN : 0);
  const offset = seq.lenK - seq.lenQ;
  const rows = o.rows ?? Array.from({ length: seq.lenQ }, (_, i) => i);
  for (let h = 0; h < headsQ; h++) {
    const hk = Math.floor(h / (headsQ / headsKv));
    for (const i of rows) {
      const scores: number[] = [];
      const keys: number[] = [];
      for (let j = 0; j < seq.lenK; j++) {
        // Visibility: the diagonal of query i is key i + offset.
        const diag = i + offset;
        let visible = true;
        if (o.causal && j > diag) visible = false;
        if (o.windowLeft !== undefined && o.windowLeft >= 0 && j < diag - o.windowLeft) visible = false;
        if (o.windowRight !== undefined && o.windowRight >= 0 && j > diag + o.windowRight) visible = false;
        if (o.keyMask && !o.keyMask(h, i, j)) visible = false;
        if (!visible) continue;
        let dot = 0;
        for (let c = 0; c < dim; c++) dot += seq.q[(i * headsQ + h) * dim + c] * seq.k[(j * headsKv + hk) * dim + c];
        let s = dot * o.scale;
        if (o.softcap && o.softcap > 0) s = o.softcap * Math.tanh(s / o.softcap);
        if (o.alibiSlopes) s -= o.alibiSlopes[h] * Math.abs(diag - j);
        scores.push(s);
        keys.push(j);
      }
      if (scores.length === 0) {
        lse[h * seq.lenQ + i] = -Infinity;
        continue; // output stays 0
      }
      const m = Math.max(...scores);
      let sum = 0;
      for (const s of scores) sum += Math.exp(s - m);
      lse[h * seq.lenQ + i] = m + Math.log(sum);
      for (let t = 0; t < keys.length; t++) {
        const p = Math.exp(scores[t] - m) / sum;
        for (let c = 0; c < dim; c++) out[(i * headsQ + h) * dim + c] += p * seq.v[(keys[t] * headsKv + hk) * dim + c];
      }
    }
  }
  return { out, lse };
}

// ‖a − b‖ / ‖b‖ with each b[i]² counted as at least `floor`; NaN or a length mismatch gives Infinity.
function flooredRelL2(a: ArrayLike<number>, b: ArrayLike<number>, floor: number): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) || Number.isNaN(b[i])) return Infinity;
    num += (a[i] - b[i]) ** 2;
    den += Math.max(b[i] ** 2, floor);
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** ‖a − b‖ / ‖b‖ over finite values; NaN or a length mismatch gives Infinity. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return flooredRelL2(a, b, 0);
}

/**
 * Relative L2 error of log-sum-exps: like {@link relL2}, but each reference value counts as at least 1
 * in the norm, so an lse near 0 (a short row whose scores are small) is held to an absolute error,
 * not to a relative one that a rounding in the last place can exceed. Never larger than relL2.
 */
export function lseRelL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return flooredRelL2(a, b, 1);
}

/** Largest |a − b| (Infinity for NaN). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return Infinity;
    m = Math.max(m, d);
  }
  return m;
}

/** Uniform random doubles in [-1, 1) (fresh every call). */
export function randomArray(n: number, amplitude = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.random() * 2 - 1) * amplitude;
  return a;
}
