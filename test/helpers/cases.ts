/** Builds attention test cases and checks library output against the float64 reference. */
import { attention, AttentionOptions, Device, DType, Tensor } from '../../lib';
import { randomArray, lseRelL2, referenceAttention, relL2 } from './reference';

export interface Case {
  batch: number;
  lenQ: number[];  // per sequence (all equal for dense)
  lenK: number[];
  headsQ: number;
  headsKv: number;
  dim: number;
  varlen?: boolean;
  /** Give q/k/v non-contiguous batch/head strides (a [B, H, S, D] buffer permuted to [B, S, H, D]). */
  strided?: boolean;
  options?: Omit<AttentionOptions, 'out' | 'cuSeqlensQ' | 'cuSeqlensK'>;
  /**
   * Scale key j of each sequence by 1 + keyRamp * min(j, lenK - 1 - j) / 128: scores grow from both
   * ends toward the middle, so a kernel walking the keys in either direction meets a row max that
   * keeps rising and O's rescale runs (keys uniform in [-1, 1), keyRamp 4: a 128-key block's max
   * rises by about 6 nats on the last).
   */
  keyRamp?: number;
}

export const TOLERANCE: Record<DType, number> = { f32: 2e-5, f16: 3e-3, bf16: 1e-2, fp8e4m3: 1, int8: 1, int32: 0 };

/** Cumulative offsets [0, x0, x0 + x1, ...] of per-sequence lengths (cuSeqlensQ / cuSeqlensK). */
export function cumsum(xs: number[]): number[] {
  const out = [0];
  for (const x of xs) out.push(out[out.length - 1] + x);
  return out;
}

/** Host data of a tensor laid out [B, S, H, D] (or [T, H, D]), as the library's dtype rounded it. */
async function hostValues(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.toArray());
}

function rampedKeys(c: Case, dtype: DType, device: Device): Tensor {
  const D = c.dim;
  const total = c.lenK.reduce((a, b) => a + b, 0);
  const data = randomArray(total * c.headsKv * D);
  let row = 0;
  for (const len of c.lenK)
    for (let j = 0; j < len; j++, row++) {
      const f = 1 + c.keyRamp! * Math.min(j, len - 1 - j) / 128;
      for (let i = row * c.headsKv * D; i < (row + 1) * c.headsKv * D; i++) data[i] *= f;
    }
  return Tensor.fromArray(data, c.varlen ? [total, c.headsKv, D] : [c.batch, c.lenK[0], c.headsKv, D], { dtype, device });
}

function makeInput(c: Case, lens: number[], heads: number, dtype: DType, device: Device): Tensor {
  const D = c.dim;
  if (c.varlen) {
    const total = lens.reduce((a, b) => a + b, 0);
    return Tensor.randn([total, heads, D], { dtype, device });
  }
  const S = lens[0];
  if (c.strided) {
    // Physically [B, H, S, D]: batch and head strides differ from the dense [B, S, H, D] layout.
    return Tensor.randn([c.batch, heads, S, D], { dtype, device }).permute([0, 2, 1, 3]);
  }
  return Tensor.randn([c.batch, S, heads, D], { dtype, device });
}

export interface CaseResult {
  errOut: number;
  errLse: number;
  tolerance: number;
}

/** Runs one case on `device` with `dtype` and measures the error against float64. */
export async function runCase(c: Case, dtype: DType, device: Device): Promise<CaseResult> {
  const q = makeInput(c, c.lenQ, c.headsQ, dtype, device);
  const k = c.keyRamp !== undefined ? rampedKeys(c, dtype, device) : makeInput(c, c.lenK, c.headsKv, dtype, device);
  const v = makeInput(c, c.lenK, c.headsKv, dtype, device);
  // Poison: every element the kernel fails to write stays NaN and fails the comparison.
  const out = Tensor.full(q.shape, NaN, { dtype, device });
  const opts: AttentionOptions = { ...c.options, out };
  if (c.varlen) {
    opts.cuSeqlensQ = cumsum(c.lenQ);
    opts.cuSeqlensK = cumsum(c.lenK);
  }
  const { lse } = attention(q, k, v, opts);
  const [qh, kh, vh, oh, lh] = await Promise.all([hostValues(q), hostValues(k), hostValues(v), hostValues(out), lse!.toArray()]);

  const D = c.dim;
  const scale = c.options?.scale ?? 1 / Math.sqrt(D);
  const refOut: number[] = [];
  const gotOut: number[] = [];
  const refLse: number[] = [];
  const gotLse: number[] = [];
  const cuQ = cumsum(c.lenQ);
  const cuK = cumsum(c.lenK);
  const totalQ = cuQ[cuQ.length - 1];
  for (let b = 0; b < c.batch; b++) {
    const Lq = c.lenQ[b];
    const Lk = c.lenK[b];
    const rowQ = c.varlen ? cuQ[b] : b * Lq;
    const rowK = c.varlen ? cuK[b] : b * Lk;
    const seq = {
      q: qh.subarray(rowQ * c.headsQ * D, (rowQ + Lq) * c.headsQ * D),
      k: kh.subarray(rowK * c.headsKv * D, (rowK + Lk) * c.headsKv * D),
      v: vh.subarray(rowK * c.headsKv * D, (rowK + Lk) * c.headsKv * D),
      lenQ: Lq,
      lenK: Lk,
    };
    const ref = referenceAttention(seq, {
      headsQ: c.headsQ, headsKv: c.headsKv, dim: D, scale,
      causal: c.options?.causal, windowLeft: c.options?.window?.[0], windowRight: c.options?.window?.[1],
      softcap: c.options?.softcap, alibiSlopes: c.options?.alibiSlopes,
    });
    // Element by element: spreading arrays this long overflows the call stack.
    for (const x of ref.out) refOut.push(x);
    for (const x of oh.subarray(rowQ * c.headsQ * D, (rowQ + Lq) * c.headsQ * D)) gotOut.push(x);
    for (let h = 0; h < c.headsQ; h++)
      for (let i = 0; i < Lq; i++) {
        refLse.push(ref.lse[h * Lq + i]);
        gotLse.push(c.varlen ? lh[h * totalQ + rowQ + i] : lh[(b * c.headsQ + h) * Lq + i]);
      }
  }
  for (const t of [q, k, v, out, lse!]) t.dispose();
  // Rows that see no key: lse must be exactly -inf in both.
  const finiteRef: number[] = [];
  const finiteGot: number[] = [];
  let lseMismatch = false;
  for (let i = 0; i < refLse.length; i++) {
    if (refLse[i] === -Infinity) {
      if (gotLse[i] !== -Infinity) lseMismatch = true;
    } else {
      finiteRef.push(refLse[i]);
      finiteGot.push(gotLse[i]);
    }
  }
  return {
    errOut: relL2(gotOut, refOut),
    errLse: lseMismatch ? Infinity : lseRelL2(finiteGot, finiteRef),
    tolerance: TOLERANCE[dtype],
  };
}

/** The option/shape grid shared by the CPU and GPU suites. */
export function caseGrid(dims: number[]): Array<[string, Case]> {
  const cases: Array<[string, Case]> = [];
  const dense = (batch: number, lq: number, lk: number, hq: number, hkv: number, dim: number, options: Case['options'] = {}, extra: Partial<Case> = {}): Case => ({
    batch, lenQ: Array(batch).fill(lq), lenK: Array(batch).fill(lk), headsQ: hq, headsKv: hkv, dim, options, ...extra,
  });
  for (const d of dims) {
    for (const L of [1, 17, 129]) {
      cases.push([`d${d} L${L} plain`, dense(2, L, L, 2, 2, d)]);
      cases.push([`d${d} L${L} causal`, dense(2, L, L, 2, 2, d, { causal: true })]);
    }
    cases.push([`d${d} q shorter than k, causal`, dense(1, 17, 70, 2, 2, d, { causal: true })]);
    cases.push([`d${d} q longer than k, causal (empty rows)`, dense(1, 40, 23, 2, 2, d, { causal: true })]);
    cases.push([`d${d} GQA 4:1`, dense(2, 33, 45, 8, 2, d)]);
    cases.push([`d${d} MQA causal`, dense(1, 65, 65, 4, 1, d, { causal: true })]);
    cases.push([`d${d} window`, dense(1, 100, 100, 2, 2, d, { window: [16, 8] })]);
    cases.push([`d${d} window + causal`, dense(1, 100, 130, 2, 1, d, { window: [20, -1], causal: true })]);
    cases.push([`d${d} softcap + scale`, dense(1, 50, 60, 2, 2, d, { softcap: 5, scale: 0.9 })]);
    cases.push([`d${d} alibi causal`, dense(1, 48, 48, 4, 2, d, { alibiSlopes: [0.5, 0.25, 0.125, 0.0625], causal: true })]);
    cases.push([`d${d} strided q/k/v`, dense(2, 37, 41, 4, 2, d, { causal: true }, { strided: true })]);
    cases.push([`d${d} rising scores`, { ...dense(1, 40, 300, 2, 1, d), keyRamp: 8 }]);
    cases.push([`d${d} varlen`, { batch: 3, lenQ: [5, 0, 77], lenK: [9, 3, 77], headsQ: 4, headsKv: 2, dim: d, varlen: true, options: { causal: true } }]);
    cases.push([`d${d} varlen window`, { batch: 2, lenQ: [130, 1], lenK: [140, 64], headsQ: 2, headsKv: 2, dim: d, varlen: true, options: { window: [32, 0] } }]);
  }
  return cases;
}
