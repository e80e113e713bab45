/**
 * MLA test oracle, written independently of the library. A random MLA "model" (per head W_UK
 * [128, 512] and W_UV [512, 128]), a shadow of every latent row appended to a PagedLatentCache, and
 * two float64 references:
 *  - decompressed: k_nope = W_UK c, v = c W_UV per head, standard attention with q = [q_nope, q_rope]
 *    (192 wide) and k = [k_nope, k_rope]; this is what MLA means, and agreeing with it proves that
 *    the library's absorbed form (q_latent = q_nope W_UK, output o_latent W_UV) is equivalent;
 *  - absorbed: attention in latent space over the 576-wide rows (cheap enough for long contexts).
 */
import { Device, DType, mlaDecode, MlaDecodeOptions, PagedLatentCache, Tensor } from '../../lib';
import { MlaDecodeInternals, mlaDecodeWith } from '../../lib/mla_attention';
import { maxAbsDiff, relL2 } from './reference';

export const D_LATENT = 512;
export const D_ROPE = 64;
export const D_ROW = 576;
export const D_NOPE = 128;
export const D_V = 128;
/** DeepSeek's softmax scale: 1 / sqrt(qk head dim before absorption). */
export const MLA_SCALE = 1 / Math.sqrt(D_NOPE + D_ROPE);

/** Standard normal doubles (Box-Muller), fresh every call. */
export function gaussian(n: number, std = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - Math.random()));
    const t = 2 * Math.PI * Math.random();
    a[i] = r * Math.cos(t) * std;
    if (i + 1 < n) a[i + 1] = r * Math.sin(t) * std;
  }
  return a;
}

/** Per-head up-projections: wUK[h] is [128][512], wUV[h] is [512][128] (row-major). */
export interface MlaModel {
  heads: number;
  wUK: Float64Array[];
  wUV: Float64Array[];
}

export function randomModel(heads: number): MlaModel {
  // Unit-variance latents then give unit-variance k_nope and v.
  const std = 1 / Math.sqrt(D_LATENT);
  return {
    heads,
    wUK: Array.from({ length: heads }, () => gaussian(D_NOPE * D_LATENT, std)),
    wUV: Array.from({ length: heads }, () => gaussian(D_LATENT * D_V, std)),
  };
}

export interface RefResult {
  /** [nq][heads][width] */
  out: Float64Array;
  /** [nq][heads]; -Infinity for a row that sees no key. */
  lse: Float64Array;
}

/** Softmax attention of one query over keys 0..hi-1 given its scores; adds p * value(j) into out. */
function softmaxInto(scores: Float64Array, hi: number, softcap: number | undefined, value: (j: number) => ArrayLike<number>, out: Float64Array, o0: number, width: number): number {
  if (hi <= 0) return -Infinity;
  let m = -Infinity;
  for (let j = 0; j < hi; j++) {
    if (softcap && softcap > 0) scores[j] = softcap * Math.tanh(scores[j] / softcap);
    m = Math.max(m, scores[j]);
  }
  let sum = 0;
  for (let j = 0; j < hi; j++) sum += Math.exp(scores[j] - m);
  for (let j = 0; j < hi; j++) {
    const p = Math.exp(scores[j] - m) / sum;
    const v = value(j);
    for (let c = 0; c < width; c++) out[o0 + c] += p * v[c];
  }
  return m + Math.log(sum);
}

interface RefOptions {
  scale: number;
  causal?: boolean;
  softcap?: number;
}

/**
 * Standard MLA attention of one sequence with explicit decompression. rows: the cached tokens'
 * [latent 512, rope 64]; qNope [nq][heads][128], qRope [nq][heads][64]. Output [nq][heads][128].
 */
export function referenceDecompressed(model: MlaModel, rows: number[][], qNope: Float64Array, qRope: Float64Array, nq: number, o: RefOptions): RefResult {
  const H = model.heads;
  const T = rows.length;
  const out = new Float64Array(nq * H * D_V);
  const lse = new Float64Array(nq * H);
  const scores = new Float64Array(T);
  for (let h = 0; h < H; h++) {
    const wk = model.wUK[h];
    const wv = model.wUV[h];
    // Decompress every cached token for this head.
    const kNope = rows.map((c) => {
      const k = new Float64Array(D_NOPE);
      for (let d = 0; d < D_NOPE; d++) {
        let s = 0;
        for (let i = 0; i < D_LATENT; i++) s += wk[d * D_LATENT + i] * c[i];
        k[d] = s;
      }
      return k;
    });
    const vals = rows.map((c) => {
      const v = new Float64Array(D_V);
      for (let i = 0; i < D_LATENT; i++) {
        const ci = c[i];
        for (let d = 0; d < D_V; d++) v[d] += ci * wv[i * D_V + d];
      }
      return v;
    });
    for (let r = 0; r < nq; r++) {
      const pos = T - nq + r;
      const hi = o.causal === false ? T : Math.min(T, pos + 1);
      const qn = (r * H + h) * D_NOPE;
      const qr = (r * H + h) * D_ROPE;
      for (let j = 0; j < hi; j++) {
        let s = 0;
        for (let d = 0; d < D_NOPE; d++) s += qNope[qn + d] * kNope[j][d];
        for (let d = 0; d < D_ROPE; d++) s += qRope[qr + d] * rows[j][D_LATENT + d];
        scores[j] = s * o.scale;
      }
      lse[r * H + h] = softmaxInto(scores, hi, o.softcap, (j) => vals[j], out, (r * H + h) * D_V, D_V);
    }
  }
  return { out, lse };
}

/** The same attention in latent space: q [nq][heads][576] over the 576-wide rows, output 512 wide. */
export function referenceAbsorbed(rows: number[][], q: ArrayLike<number>, heads: number, nq: number, o: RefOptions): RefResult {
  const T = rows.length;
  const out = new Float64Array(nq * heads * D_LATENT);
  const lse = new Float64Array(nq * heads);
  const scores = new Float64Array(T);
  for (let r = 0; r < nq; r++) {
    const pos = T - nq + r;
    const hi = o.causal === false ? T : Math.min(T, pos + 1);
    for (let h = 0; h < heads; h++) {
      const q0 = (r * heads + h) * D_ROW;
      for (let j = 0; j < hi; j++) {
        const row = rows[j];
        let s = 0;
        for (let c = 0; c < D_ROW; c++) s += q[q0 + c] * row[c];
        scores[j] = s * o.scale;
      }
      lse[r * heads + h] = softmaxInto(scores, hi, o.softcap, (j) => rows[j], out, (r * heads + h) * D_LATENT, D_LATENT);
    }
  }
  return { out, lse };
}

/** q_latent = q_nope W_UK per head, concatenated with q_rope: [nq][heads][576]. */
export function absorbQuery(model: MlaModel, qNope: Float64Array, qRope: Float64Array, nq: number): Float64Array {
  const H = model.heads;
  const q = new Float64Array(nq * H * D_ROW);
  for (let r = 0; r < nq; r++)
    for (let h = 0; h < H; h++) {
      const wk = model.wUK[h];
      const dst = (r * H + h) * D_ROW;
      for (let d = 0; d < D_NOPE; d++) {
        const x = qNope[(r * H + h) * D_NOPE + d];
        for (let i = 0; i < D_LATENT; i++) q[dst + i] += x * wk[d * D_LATENT + i];
      }
      for (let d = 0; d < D_ROPE; d++) q[dst + D_LATENT + d] = qRope[(r * H + h) * D_ROPE + d];
    }
  return q;
}

/** o = o_latent W_UV per head: [nq][heads][512] -> [nq][heads][128]. */
export function projectOutput(model: MlaModel, oLatent: ArrayLike<number>, nq: number): Float64Array {
  const H = model.heads;
  const o = new Float64Array(nq * H * D_V);
  for (let r = 0; r < nq; r++)
    for (let h = 0; h < H; h++) {
      const wv = model.wUV[h];
      const src = (r * H + h) * D_LATENT;
      const dst = (r * H + h) * D_V;
      for (let i = 0; i < D_LATENT; i++) {
        const x = oLatent[src + i];
        for (let d = 0; d < D_V; d++) o[dst + d] += x * wv[i * D_V + d];
      }
    }
  return o;
}

/** Errors of one check: relative L2 of the output, largest |lse difference|. */
export interface MlaError {
  out: number;
  lse: number;
}

/** Drives a PagedLatentCache while keeping every appended row (as the library received it) on the host. */
export class ShadowLatentCache {
  /** seq -> layer -> rows of 576 doubles. */
  readonly rows = new Map<number, number[][][]>();

  constructor(readonly cache: PagedLatentCache) {}

  add(): number {
    const id = this.cache.addSequence();
    this.rows.set(id, Array.from({ length: this.cache.layers }, () => []));
    return id;
  }

  fork(seq: number): number {
    const id = this.cache.fork(seq);
    this.rows.set(id, this.rows.get(seq)!.map((l) => l.map((r) => [...r])));
    return id;
  }

  free(seq: number): void {
    this.cache.free(seq);
    this.rows.delete(seq);
  }

  /**
   * Appends random rows (counts[i] to seqs[i]) in one batched call, either as one [tokens, 576]
   * tensor or as latent [tokens, 512] + rope [tokens, 64]. The rope part gets its own scale
   * (ropeStd) so that fp8 per-part scales matter. rowScale(k, count) scales the k-th of a
   * sequence's `count` new rows (one-tensor form only).
   */
  async append(seqs: number[], layer: number, counts: number[], o: { splitRope?: boolean; ropeStd?: number; rowScale?: (k: number, count: number) => number } = {}): Promise<void> {
    const { computeDtype: dtype, device } = this.cache;
    const total = counts.reduce((a, b) => a + b, 0);
    const ropeStd = o.ropeStd ?? 1;
    let rowsHost: Float64Array;
    if (o.splitRope) {
      const latent = Tensor.randn([total, D_LATENT], { dtype, device });
      const rope = Tensor.randn([total, D_ROPE], { dtype, device, std: ropeStd });
      this.cache.append(seqs, layer, latent, rope, counts);
      const [lh, rh] = await Promise.all([latent.toArray(), rope.toArray()]);
      latent.dispose();
      rope.dispose();
      rowsHost = new Float64Array(total * D_ROW);
      for (let t = 0; t < total; t++) {
        for (let c = 0; c < D_LATENT; c++) rowsHost[t * D_ROW + c] = lh[t * D_LATENT + c];
        for (let c = 0; c < D_ROPE; c++) rowsHost[t * D_ROW + D_LATENT + c] = rh[t * D_ROPE + c];
      }
    } else {
      // One [tokens, 576] buffer: unit-variance latent columns, rope columns scaled by ropeStd.
      const host = gaussian(total * D_ROW);
      for (let t = 0; t < total; t++) for (let c = D_LATENT; c < D_ROW; c++) host[t * D_ROW + c] *= ropeStd;
      if (o.rowScale) {
        let t = 0;
        for (const n of counts)
          for (let k = 0; k < n; k++, t++) {
            const f = o.rowScale(k, n);
            for (let c = 0; c < D_ROW; c++) host[t * D_ROW + c] *= f;
          }
      }
      const rows = Tensor.fromArray(host, [total, D_ROW], { dtype, device });
      this.cache.append(seqs, layer, rows, null, counts);
      rowsHost = Float64Array.from(await rows.toArray());
      rows.dispose();
    }
    let t = 0;
    seqs.forEach((s, i) => {
      for (let k = 0; k < counts[i]; k++, t++) this.rows.get(s)![layer].push(Array.from(rowsHost.subarray(t * D_ROW, (t + 1) * D_ROW)));
    });
  }

  private queryCounts(seqs: number[], options: Partial<MlaDecodeOptions>): number[] {
    return options.queryCounts ? [...options.queryCounts] : seqs.map(() => 1);
  }

  /** Runs mlaDecode on absorbed queries of a random model and compares with decompressed float64 attention. */
  async checkDecompressed(seqs: number[], layer: number, model: MlaModel, options: Partial<MlaDecodeOptions> = {}): Promise<MlaError> {
    const { computeDtype: dtype, device } = this.cache;
    const H = model.heads;
    const counts = this.queryCounts(seqs, options);
    const total = counts.reduce((a, b) => a + b, 0);
    const qNope = gaussian(total * H * D_NOPE);
    const qRope = gaussian(total * H * D_ROPE);
    const q = Tensor.fromArray(absorbQuery(model, qNope, qRope, total), [total, H, D_ROW], { dtype, device });
    const out = Tensor.full([total, H, D_LATENT], NaN, { dtype, device }); // poison
    const scale = options.scale ?? MLA_SCALE;
    const { lse } = mlaDecode(q, this.cache, layer, seqs, { ...options, scale, out });
    const [oh, lh] = await Promise.all([out.toArray(), lse!.toArray()]);
    for (const t of [q, out, lse!]) t.dispose();
    const got = projectOutput(model, oh, total);
    const refOut: number[] = [];
    const refLse: number[] = [];
    let row = 0;
    seqs.forEach((s, i) => {
      const nq = counts[i];
      const r = referenceDecompressed(model, this.rows.get(s)![layer], qNope.subarray(row * H * D_NOPE, (row + nq) * H * D_NOPE),
        qRope.subarray(row * H * D_ROPE, (row + nq) * H * D_ROPE), nq, { scale, causal: options.causal, softcap: options.softcap });
      for (const x of r.out) refOut.push(x);
      for (const x of r.lse) refLse.push(x);
      row += nq;
    });
    return { out: relL2(got, refOut), lse: lseError(lh, refLse) };
  }

  /** Runs mlaDecode on random latent-space queries and compares with absorbed float64 attention. */
  async checkAbsorbed(seqs: number[], layer: number, heads: number, options: Partial<MlaDecodeOptions> = {}, internals: MlaDecodeInternals = {}): Promise<MlaError> {
    const { computeDtype: dtype, device } = this.cache;
    const counts = this.queryCounts(seqs, options);
    const total = counts.reduce((a, b) => a + b, 0);
    // Latent-space queries of the size absorption produces (|q_latent| ~ |q_nope|).
    const q = Tensor.fromArray(gaussian(total * heads * D_ROW, Math.sqrt(D_NOPE / D_LATENT)), [total, heads, D_ROW], { dtype, device });
    const out = Tensor.full([total, heads, D_LATENT], NaN, { dtype, device });
    const scale = options.scale ?? MLA_SCALE;
    const { lse } = mlaDecodeWith(q, this.cache, layer, seqs, { ...options, scale, out }, internals);
    const [qh, oh, lh] = await Promise.all([q.toArray(), out.toArray(), lse!.toArray()]);
    for (const t of [q, out, lse!]) t.dispose();
    const refOut: number[] = [];
    const refLse: number[] = [];
    let row = 0;
    seqs.forEach((s, i) => {
      const nq = counts[i];
      const r = referenceAbsorbed(this.rows.get(s)![layer], qh.subarray(row * heads * D_ROW, (row + nq) * heads * D_ROW), heads, nq,
        { scale, causal: options.causal, softcap: options.softcap });
      for (const x of r.out) refOut.push(x);
      for (const x of r.lse) refLse.push(x);
      row += nq;
    });
    return { out: relL2(oh, refOut), lse: lseError(lh, refLse) };
  }
}

/** Largest |lse difference|; Infinity when -inf rows disagree or a value is NaN. */
function lseError(got: ArrayLike<number>, ref: number[]): number {
  if (got.length !== ref.length) return Infinity;
  const g: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < ref.length; i++) {
    if (ref[i] === -Infinity || got[i] === -Infinity) {
      if (ref[i] !== got[i]) return Infinity;
    } else {
      g.push(got[i]);
      r.push(ref[i]);
    }
  }
  return maxAbsDiff(g, r);
}

export function makeLatentCache(device: Device, dtype: DType, o: { layers?: number; pageSize?: number; capacityPages?: number; maxSequences?: number; computeDtype?: DType } = {}): PagedLatentCache {
  return new PagedLatentCache({
    layers: o.layers ?? 2, pageSize: o.pageSize ?? 16, capacityPages: o.capacityPages ?? 64, maxSequences: o.maxSequences ?? 16,
    dtype, computeDtype: o.computeDtype, device,
  });
}

/** Relative L2 bounds of CUDA MLA against float64 (see test/mla.cpu.test.ts for the fp8 figures): bf16 rows, queries, P and output. */
export const CUDA_TOL = { bf16: { out: 1e-2, lse: 5e-2 }, fp8e4m3: { out: 5e-2, lse: 0.15 } } as const;

/** Asserts a CUDA MLA result is within CUDA_TOL of float64. */
export function expectWithin(err: MlaError, dtype: keyof typeof CUDA_TOL): void {
  expect(err.out).toBeLessThan(CUDA_TOL[dtype].out);
  expect(err.lse).toBeLessThan(CUDA_TOL[dtype].lse);
}

/**
 * One decode kernel against float64 over 128 heads (test/mla_sm90.cuda.test.ts: the default dispatch,
 * the sm_90a wgmma kernel on Hopper for every case here; test/mla_mma.cuda.test.ts: the forceMma
 * hook, the mma.sync kernel): partial last tiles (unwritten page slots), page pieces of 16 and 32
 * keys, whole-page tiles, splits, prefill rows spanning CTAs, non-causal, softcap. One file per
 * kernel, so that jest runs them on separate workers (together they outlast a device call's
 * minutes on one). Elsewhere than Hopper both files take the same kernel.
 */
export function kernelCases(kernel: 'auto' | 'mma'): void {
  for (const dtype of ['bf16', 'fp8e4m3'] as const) {
    for (const pageSize of dtype === 'bf16' ? [16, 32, 64, 128] : [16, 64]) {
      test(`${kernel} kernel, ${dtype} page ${pageSize}, 128 heads: 1, 63, 65, 700, 2105 keys, splits, prefill, softcap`, async () => {
        const internals = { forceMma: kernel === 'mma' };
        const shadow = new ShadowLatentCache(makeLatentCache('cuda:0', dtype, { pageSize, layers: 1, capacityPages: Math.ceil(3200 / pageSize) + 64 }));
        const seqs = [shadow.add(), shadow.add(), shadow.add(), shadow.add(), shadow.add()];
        await shadow.append(seqs, 0, [1, 63, 65, 700, 2100]);
        await shadow.append(seqs.slice(4), 0, [5], { splitRope: true });
        for (const numSplits of [undefined, 1, 3, 16]) expectWithin(await shadow.checkAbsorbed(seqs, 0, 128, { numSplits }, internals), dtype);
        const two = seqs.slice(3);
        expectWithin(await shadow.checkAbsorbed(two, 0, 128, { queryCounts: [3, 17] }, internals), dtype);
        expectWithin(await shadow.checkAbsorbed(two, 0, 16, { queryCounts: [9, 40], numSplits: 2 }, internals), dtype);
        expectWithin(await shadow.checkAbsorbed(two, 0, 128, { queryCounts: [2, 5], causal: false }, internals), dtype);
        expectWithin(await shadow.checkAbsorbed(two, 0, 128, { softcap: 2, scale: 0.2, numSplits: 3 }, internals), dtype);
      }, 300_000);
    }
  }
}
