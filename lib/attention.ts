/** Dense attention forward: `attention(q, k, v, options)`. */
import { BlockSparseMask, checkBlockMask } from './block_sparse';
import { cuda } from './device';
import { checkBoolean, checkFloat32, checkInteger, checkKeys, checkObject, describe, toFloat32Array, toInt32Array } from './errors';
import { selectKernel } from './kernels';
import { native, NativeAttentionOptions } from './native';
import { checkTensor, Tensor } from './tensor';

/** Masking and scoring options shared by dense and paged attention. */
export interface ScoreOptions {
  /** Causal mask, bottom-right aligned when q and k lengths differ (as FlashAttention). */
  causal?: boolean;
  /** Sliding window `[left, right]` in tokens around the aligned diagonal; -1 means unbounded. */
  window?: readonly [number, number];
  /** Tanh soft-capping of scores: `s = softcap * tanh(s / softcap)`; 0 disables. */
  softcap?: number;
  /** Score scale (default `1 / sqrt(headDim)`). */
  scale?: number;
  /** One ALiBi slope per query head: `s -= slope * |i + offset - j|`. */
  alibiSlopes?: ArrayLike<number>;
}

/** Options of {@link attention}. */
export interface AttentionOptions extends ScoreOptions {
  /**
   * Cumulative sequence offsets (`batch + 1` entries, starting at 0) for variable-length batches.
   * Then q is `[totalQ, heads, dim]` and k/v `[totalK, kvHeads, dim]`.
   */
  cuSeqlensQ?: ArrayLike<number>;
  /** Cumulative key offsets; required with `cuSeqlensQ`. */
  cuSeqlensK?: ArrayLike<number>;
  /** Write the output here instead of a new tensor (q's shape, dtype and device). */
  out?: Tensor;
  /** Also return the log-sum-exp (default true). */
  returnLse?: boolean;
  /**
   * Block-sparse mask (on q's device): each 128-row query block visits only its listed 128-key
   * blocks; ANDed with the other masks. Grid: `ceil(seqQ / 128) x ceil(seqK / 128)` blocks, batch 1
   * or q's batch, heads 1 or q's heads. Varlen: per sequence, sized by the longest one.
   */
  blockMask?: BlockSparseMask;
  /**
   * Quantized forward (SageAttention-style; `softcap` and `alibiSlopes` are not supported):
   * K is smoothed by its per-head mean over tokens, Q (one scale per token) and K (one scale per
   * 64-key block) are rounded to INT8 for an exact integer Q·Kᵀ, then
   * - `'int8-fp8'`: P and V (one scale per channel) in FP8 e4m3 for P·V. Fastest; needs compute
   *   capability 8.9+ on CUDA. The e4m3 rounding of P and V costs ~2.5% relative error each, so
   *   on zero-mean random V the output's relative L2 error is ~4% (cosine ≥ 0.999).
   * - `'int8'`: P and V in f16 for P·V (runs on sm_80+); relative L2 error ≤ 3e-2, cosine ≥ 0.999.
   * - `'fp8'`: Q and K in FP8 e4m3 instead of INT8 (same per-token / per-64-key-block scales), P and
   *   V as `'int8-fp8'`: every product on FP8 tensor cores (compute capability 8.9+).
   * In every mode, for head dims that are a power of two (without `quantOutliers`), Q and the
   * smoothed K are first rotated by a fixed random-sign Hadamard transform over the head dim (Q·Kᵀ
   * unchanged), so that a few outlier channels do not set the 8-bit steps of all the others.
   * CUDA kernels exist for head dims 64 and 128 (f16/bf16); on compute capability 9.0 they run on
   * Hopper's wgmma/TMA. The CPU backend emulates the same quantization for any head dim. The
   * returned lse is the exact one (the smoothing is added back).
   */
  quantized?: QuantizedMode;
  /**
   * With `quantized`: per (sequence, kv head), the 16 channels of largest K variance stay out of
   * the 8-bit Q·Kᵀ; their q and smoothed k go to f16 and their dot runs on an f16 MMA beside the
   * 8-bit one, and nothing is rotated. For inputs whose outlier channels are large in Q and K alike
   * (which the K smoothing cannot remove): there `'int8'` goes from ~1.5% relative L2 error
   * (rotated; ~5% unrotated) to ~0.3%, `'int8-fp8'` and `'fp8'` to ~2.7%. It costs the quantized forward 19–28% of its speed on an H100
   * (docs/perf.md, run 38). Default false.
   */
  quantOutliers?: boolean;
}

/** Precision modes of {@link AttentionOptions.quantized}. */
export type QuantizedMode = 'int8-fp8' | 'int8' | 'fp8';

const QUANT_CODES: Record<QuantizedMode, number> = { 'int8-fp8': 1, int8: 2, fp8: 3 };

/** Output of {@link attention}. */
export interface AttentionResult {
  /** Attention output, q's shape and dtype. */
  out: Tensor;
  /** Natural-log sum of exp(scores), float32: `[batch, heads, seqQ]`, or `[heads, totalQ]` for varlen; -inf for rows that see no key. */
  lse: Tensor | null;
}

const SCORE_KEYS = ['causal', 'window', 'softcap', 'scale', 'alibiSlopes'] as const;
const ATTENTION_KEYS = [...SCORE_KEYS, 'cuSeqlensQ', 'cuSeqlensK', 'out', 'returnLse', 'blockMask', 'quantized', 'quantOutliers'] as const;

/** Validates the score options and turns them into kernel parameters. @internal */
export function scoreParams(o: Record<string, unknown>, headDim: number, headsQ: number, name: string): NativeAttentionOptions {
  const p: NativeAttentionOptions = { scale: 1 / Math.sqrt(headDim), softcap: 0, causal: false, windowLeft: -1, windowRight: -1 };
  if (o.causal !== undefined) p.causal = checkBoolean(o.causal, `${name}.causal`);
  if (o.window !== undefined) {
    const w = o.window;
    if (!Array.isArray(w) || w.length !== 2) throw new TypeError(`${name}.window must be a [left, right] pair`);
    p.windowLeft = checkInteger(w[0], `${name}.window[0]`, -1, 2 ** 31 - 1);
    p.windowRight = checkInteger(w[1], `${name}.window[1]`, -1, 2 ** 31 - 1);
  }
  if (o.softcap !== undefined) {
    p.softcap = checkFloat32(o.softcap, `${name}.softcap`);
    if (p.softcap < 0) throw new RangeError(`${name}.softcap must be >= 0, got ${p.softcap}`);
  }
  if (o.scale !== undefined) {
    p.scale = checkFloat32(o.scale, `${name}.scale`);
    if (p.scale <= 0) throw new RangeError(`${name}.scale must be > 0, got ${p.scale}`);
  }
  if (o.alibiSlopes !== undefined) {
    p.alibiSlopes = toFloat32Array(o.alibiSlopes, `${name}.alibiSlopes`);
    if (p.alibiSlopes.length !== headsQ)
      throw new RangeError(`${name}.alibiSlopes must have one slope per query head (${headsQ}), got ${p.alibiSlopes.length}`);
  }
  return p;
}

/** Validates options.quantized against the other options and the device. */
function quantizedCode(value: unknown, params: NativeAttentionOptions, device: string): number {
  if (typeof value !== 'string') throw new TypeError(`options.quantized must be 'int8-fp8', 'int8' or 'fp8', got ${describe(value)}`);
  if (!Object.prototype.hasOwnProperty.call(QUANT_CODES, value)) throw new RangeError(`options.quantized must be 'int8-fp8', 'int8' or 'fp8', got '${value}'`);
  if (params.softcap > 0) throw new RangeError('options.quantized does not support options.softcap');
  if (params.alibiSlopes !== undefined) throw new RangeError('options.quantized does not support options.alibiSlopes');
  if ((value === 'int8-fp8' || value === 'fp8') && device !== 'cpu') {
    const sm = cuda.devices()[Number(device.slice(5))]?.sm ?? 0;
    if (sm < 89)
      throw new RangeError(`options.quantized '${value}' needs FP8 tensor cores (compute capability 8.9+); ${device} is ${sm / 10}: use quantized: 'int8'`);
  }
  return QUANT_CODES[value as QuantizedMode];
}

function checkCuSeqlens(value: unknown, name: string, total: number, batch?: number): Int32Array {
  const cu = toInt32Array(value, name);
  if (cu.length < 2) throw new RangeError(`${name} needs at least 2 entries (batch + 1), got ${cu.length}`);
  if (batch !== undefined && cu.length !== batch + 1) throw new RangeError(`${name} must have ${batch + 1} entries like cuSeqlensQ, got ${cu.length}`);
  if (cu[0] !== 0) throw new RangeError(`${name}[0] must be 0, got ${cu[0]}`);
  for (let i = 1; i < cu.length; i++) if (cu[i] < cu[i - 1]) throw new RangeError(`${name} must be non-decreasing (entry ${i})`);
  if (cu[cu.length - 1] !== total) throw new RangeError(`${name} must end at ${total} (the tensor's rows), got ${cu[cu.length - 1]}`);
  return cu;
}

/**
 * Attention forward: softmax(q·kᵀ·scale + masks)·v, FlashAttention semantics.
 *
 * Layout `[batch, seq, heads, headDim]` (varlen: `[tokens, heads, headDim]`) with any strides
 * except a contiguous last dimension. k/v may have fewer heads than q (GQA/MQA).
 * The work is enqueued on the tensors' device; read results with `toArray()`.
 *
 * @example
 * const q = Tensor.randn([1, 128, 8, 64], { dtype: 'bf16', device: 'cuda:0' });
 * const { out, lse } = attention(q, k, v, { causal: true });
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): AttentionResult {
  return attentionWith(q, k, v, options, {});
}

/** Kernel selection hooks for tests and benchmarks, not part of the public API. @internal */
export interface AttentionInternals {
  /** Quantized CUDA forward: the sm_80 kernel even on a Hopper GPU (to test and time both there). */
  forceSm80?: boolean;
}

/** {@link attention} with internal kernel-selection hooks. @internal */
export function attentionWith(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions, internals: AttentionInternals): AttentionResult {
  checkTensor(q, 'q');
  checkTensor(k, 'k');
  checkTensor(v, 'v');
  const o = checkObject(options, 'options');
  checkKeys(o, ATTENTION_KEYS, 'options');
  for (const [t, name] of [[k, 'k'], [v, 'v']] as const) {
    if (t.device !== q.device) throw new RangeError(`${name} is on ${t.device} but q is on ${q.device}`);
    if (t.dtype !== q.dtype) throw new TypeError(`${name} has dtype ${t.dtype} but q has ${q.dtype}`);
  }
  const varlen = o.cuSeqlensQ !== undefined || o.cuSeqlensK !== undefined;
  const rank = varlen ? 3 : 4;
  const layout = varlen ? '[tokens, heads, headDim]' : '[batch, seq, heads, headDim]';
  for (const [t, name] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
    if (t.ndim !== rank) throw new RangeError(`${name} must be ${layout}${varlen ? ' with cuSeqlens' : ''}, got shape [${t.shape}]`);
    if (t.strides[rank - 1] !== 1) throw new RangeError(`${name} must be contiguous in its last (head) dimension`);
  }
  const r = varlen ? 0 : 1;
  const [headsQ, headDim] = [q.shape[r + 1], q.shape[r + 2]];
  const headsKv = k.shape[r + 1];
  if (headDim === 0 || headsQ === 0) throw new RangeError(`q must have at least one head of dimension >= 1, got shape [${q.shape}]`);
  if (k.shape[r + 2] !== headDim) throw new RangeError(`k head dim ${k.shape[r + 2]} must equal q's ${headDim}`);
  if (v.shape.join() !== k.shape.join()) throw new RangeError(`v shape [${v.shape}] must equal k shape [${k.shape}]`);
  if (headsKv === 0 || headsQ % headsKv !== 0) throw new RangeError(`q heads (${headsQ}) must be a multiple of k/v heads (${headsKv})`);
  if (!varlen && k.shape[0] !== q.shape[0]) throw new RangeError(`k batch ${k.shape[0]} must equal q batch ${q.shape[0]}`);
  const params = scoreParams(o, headDim, headsQ, 'options');
  if (o.quantOutliers !== undefined) {
    params.quantOutliers = checkBoolean(o.quantOutliers, 'options.quantOutliers');
    if (params.quantOutliers && o.quantized === undefined) throw new RangeError('options.quantOutliers needs options.quantized');
  }
  if (o.quantized !== undefined) {
    params.quantized = quantizedCode(o.quantized, params, q.device);
    selectKernel('quantizedAttention', q.device, q.dtype, headDim);
  } else {
    selectKernel('attention', q.device, q.dtype, headDim);
  }
  if (varlen) {
    if (o.cuSeqlensQ === undefined || o.cuSeqlensK === undefined) throw new TypeError('options.cuSeqlensQ and options.cuSeqlensK go together');
    params.cuSeqlensQ = checkCuSeqlens(o.cuSeqlensQ, 'options.cuSeqlensQ', q.shape[0]);
    params.cuSeqlensK = checkCuSeqlens(o.cuSeqlensK, 'options.cuSeqlensK', k.shape[0], params.cuSeqlensQ.length - 1);
  }

  if (o.blockMask !== undefined) {
    if (o.quantized !== undefined) throw new RangeError('options.blockMask and options.quantized cannot be combined (the quantized kernel is dense)');
    const lens = (cu: Int32Array | undefined, rows: number): number => {
      if (!cu) return rows;
      let mx = 0;
      for (let i = 1; i < cu.length; i++) mx = Math.max(mx, cu[i] - cu[i - 1]);
      return mx;
    };
    params.blockMask = checkBlockMask(o.blockMask, {
      device: q.device, batch: varlen ? params.cuSeqlensQ!.length - 1 : q.shape[0], batchName: "q's batch", heads: headsQ,
      rowsQ: lens(params.cuSeqlensQ, q.shape[1]), rowsK: lens(params.cuSeqlensK, k.shape[1]),
      rowsName: (sq, sk) => `${sq} queries x ${sk} keys`,
    });
  }

  let out: Tensor;
  if (o.out !== undefined) {
    out = checkTensor(o.out, 'options.out');
    if (out.device !== q.device || out.dtype !== q.dtype || out.shape.join() !== q.shape.join())
      throw new RangeError(`options.out must match q (${q.dtype}, [${q.shape}], ${q.device}), got ${out}`);
    if (out.strides[rank - 1] !== 1) throw new RangeError('options.out must be contiguous in its last dimension');
  } else {
    out = Tensor.empty(q.shape, { dtype: q.dtype, device: q.device });
  }
  const returnLse = o.returnLse === undefined ? true : checkBoolean(o.returnLse, 'options.returnLse');
  const lseShape = varlen ? [headsQ, q.shape[0]] : [q.shape[0], headsQ, q.shape[1]];
  const lse = returnLse ? Tensor.empty(lseShape, { dtype: 'f32', device: q.device }) : null;
  if (internals.forceSm80) params.forceSm80 = true;
  native.attention(q, k, v, out, lse, params);
  return { out, lse };
}
