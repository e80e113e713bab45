/**
 * Property-based robustness: random and hostile arguments at every public function. Each call
 * either returns (and, where the arguments are valid, the result is checked against float64) or
 * throws a TypeError/RangeError; the process never dies.
 */
import fc from 'fast-check';
import { attention, BlockSparseMask, memory, mlaDecode, PagedKVCache, PagedLatentCache, pagedAttention, synchronize, Tensor } from '../lib';
import { referenceAttention, relL2 } from './helpers/reference';

const NAMED = new Set(['TypeError', 'RangeError']);

/** Calls fn; a thrown or rejected error must be a TypeError or RangeError. */
async function namedOrOk(fn: () => unknown): Promise<void> {
  let err: unknown;
  try {
    const r = fn();
    if (r instanceof Promise || (r && typeof (r as Promise<unknown>).then === 'function')) await r;
  } catch (e) {
    err = e;
  }
  // By name: native errors come from Node's main realm, not Jest's (see helpers/throws.ts).
  if (err !== undefined && !(typeof err === 'object' && err !== null && NAMED.has((err as Error).name))) {
    throw new Error(`expected a TypeError or RangeError, got ${String(err)}`);
  }
}

function disposed(): Tensor {
  const t = Tensor.randn([2, 3]);
  t.dispose();
  return t;
}

/** Anything a careless or malicious caller might pass. */
const hostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    undefined, null, NaN, Infinity, -Infinity, -1, 0, 1, 3, 2 ** 53, -0, 1.5, '', 'cpu', 'cuda:0', 'cuda:99', 'gpu',
    'f16', 'bf16', 'int8', 'bogus', true, false, [], [0], [-1], [1.5], [2 ** 41], [1, 2, 3], {}, { causal: 'yes' },
    { window: [1] }, { scale: -1 }, { dtype: 'f64' }, { device: 'tpu' }, BigInt(3), Symbol('s'), () => 0,
    new Float32Array(3), new Int32Array([0, 2, 5]), new Uint8Array(4),
  ),
  fc.constant(null).map(() => disposed()),
  fc.constant(null).map(() => Tensor.randn([1, 3, 2, 4])),
  fc.constant(null).map(() => Tensor.randn([2, 4], { dtype: 'bf16' })),
  fc.constant(null).map(() => Tensor.fromArray([1, 2], [2], { dtype: 'int32' })),
  // Forged tensors and handles: plain objects with a tensor's fields, or its prototype.
  fc.constant(null).map(() => ({ storage: {}, dtypeCode: 0, shape: [1], strides: [1], offset: 0, device: 'cpu', dtype: 'f32' })),
  fc.constant(null).map(() => Object.create(Tensor.prototype) as unknown),
  fc.constant(null).map(() => {
    const t = Tensor.randn([4]);
    return Object.assign(Object.create(Tensor.prototype) as object, { storage: { bytes: 1e9 }, shape: [1e6], strides: [1], offset: 0, device: 'cpu', dtype: 'f32', dtypeCode: 0, t });
  }),
  fc.integer({ min: -5, max: 70 }),
  fc.double(),
  fc.string({ maxLength: 6 }),
  fc.array(fc.integer({ min: -2, max: 9 }), { maxLength: 5 }),
  fc.dictionary(fc.constantFrom('causal', 'window', 'softcap', 'scale', 'alibiSlopes', 'out', 'dtype', 'device', 'cuSeqlensQ', 'pageSize', 'layers', 'kvHeads', 'headDim', 'capacityPages'), fc.oneof(fc.integer({ min: -3, max: 9 }), fc.boolean(), fc.array(fc.integer({ min: -1, max: 9 }), { maxLength: 3 }))),
  // The less common options, with values that are almost right.
  fc.dictionary(
    fc.constantFrom('quantized', 'quantOutliers', 'returnLse', 'cuSeqlensK', 'blockMask', 'topK', 'queryCounts', 'numSplits', 'lse', 'batch', 'heads', 'rowsQ', 'rowsK', 'sinks', 'window', 'decay', 'seqLen', 'pageSummaries', 'computeDtype'),
    fc.oneof(fc.constantFrom('int8', 'int8-fp8', 'fp8', 'int4', 'bf16', 'fp8e4m3', { pages: 2 }, { tokens: -1 }, { pages: 1.5 }), fc.integer({ min: -3, max: 300 }), fc.boolean(), fc.array(fc.integer({ min: -1, max: 9 }), { maxLength: 3 })),
  ),
);

describe('hostile arguments', () => {
  const cache = new PagedKVCache({ layers: 1, kvHeads: 2, headDim: 4, pageSize: 2, capacityPages: 8 });
  const seq = cache.addSequence();
  cache.append(seq, 0, Tensor.randn([3, 2, 4]), Tensor.randn([3, 2, 4]));
  const good = Tensor.randn([1, 3, 2, 4]);
  const latent = new PagedLatentCache({ layers: 1, pageSize: 2, capacityPages: 8 });
  const lseq = latent.addSequence();
  latent.append(lseq, 0, Tensor.randn([3, 512]), Tensor.randn([3, 64]));
  const mlaQ = Tensor.randn([1, 2, 576]);
  type Target = [string, (a: unknown[]) => unknown];
  const targets: Target[] = [
    ['Tensor.fromArray', (a) => Tensor.fromArray(a[0] as never, a[1] as never, a[2] as never)],
    ['Tensor.empty', (a) => Tensor.empty(a[0] as never, a[1] as never)],
    ['Tensor.full', (a) => Tensor.full(a[0] as never, a[1] as never, a[2] as never)],
    ['Tensor.randn', (a) => Tensor.randn(a[0] as never, a[1] as never)],
    ['toArray', (a) => (a[0] as Tensor).toArray.call(a[0])],
    ['to', (a) => Tensor.prototype.to.call(a[0] as Tensor, a[1] as never)],
    ['contiguous', (a) => Tensor.prototype.contiguous.call(a[0] as Tensor)],
    ['copyFrom', (a) => good.contiguous().copyFrom(a[0] as never)],
    ['reshape', (a) => good.reshape(a[0] as never)],
    ['permute', (a) => good.permute(a[0] as never)],
    ['narrow', (a) => good.narrow(a[0] as never, a[1] as never, a[2] as never)],
    ['attention', (a) => attention(a[0] as never, a[1] as never, a[2] as never, a[3] as never)],
    ['attention (valid q/k)', (a) => attention(good, good, a[0] as never, a[1] as never)],
    ['PagedKVCache', (a) => new PagedKVCache(a[0] as never).dispose()],
    ['cache.append', (a) => cache.append(a[0] as never, a[1] as never, a[2] as never, a[3] as never)],
    ['cache.fork/free', (a) => cache.free(cache.fork(a[0] as never))],
    ['cache.length', (a) => cache.length(a[0] as never, a[1] as never)],
    ['pagedAttention', (a) => pagedAttention(a[0] as never, cache, a[1] as never, a[2] as never, a[3] as never)],
    ['pagedAttention (any cache)', (a) => pagedAttention(a[0] as never, a[1] as never, 0, [seq])],
    ['attention (valid q/k/v, any options)', (a) => attention(good, good, good, a[0] as never)],
    ['PagedLatentCache', (a) => new PagedLatentCache(a[0] as never).dispose()],
    ['latent.append', (a) => latent.append(a[0] as never, a[1] as never, a[2] as never, a[3] as never, a[4] as never)],
    ['mlaDecode', (a) => mlaDecode(a[0] as never, latent, a[1] as never, a[2] as never, a[3] as never)],
    ['mlaDecode (valid q)', (a) => mlaDecode(mlaQ, latent, 0, [lseq], a[0] as never)],
    ['BlockSparseMask.fromDense', (a) => BlockSparseMask.fromDense(a[0] as never, a[1] as never, a[2] as never).dispose()],
    ['BlockSparseMask.fromCsr', (a) => BlockSparseMask.fromCsr(a[0] as never, a[1] as never, a[2] as never, a[3] as never).dispose()],
    ['BlockSparseMask.slidingWindowWithSinks', (a) => BlockSparseMask.slidingWindowWithSinks(a[0] as never).dispose()],
    ['BlockSparseMask.radial', (a) => BlockSparseMask.radial(a[0] as never).dispose()],
    ['memory.stats', (a) => memory.stats(a[0] as never)],
    ['synchronize', (a) => synchronize(a[0] as never)],
  ];

  test.each(targets)('%s', async (_name, call) => {
    await fc.assert(
      fc.asyncProperty(fc.array(hostile, { minLength: 0, maxLength: 4 }), async (args) => {
        await namedOrOk(() => call(args));
      }),
      { numRuns: 150 },
    );
    // The caches are still consistent and usable after all of it.
    expect(cache.length(seq)).toBeGreaterThanOrEqual(3);
    expect(latent.length(lseq)).toBeGreaterThanOrEqual(3);
    await synchronize('cpu');
  }, 60_000);
});

describe('random valid attention calls match float64', () => {
  test('random shapes, GQA, causal/window/softcap/scale', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          lq: fc.integer({ min: 0, max: 19 }),
          lk: fc.integer({ min: 0, max: 23 }),
          hkv: fc.integer({ min: 1, max: 2 }),
          group: fc.integer({ min: 1, max: 3 }),
          dim: fc.integer({ min: 1, max: 12 }),
          causal: fc.boolean(),
          window: fc.option(fc.tuple(fc.integer({ min: -1, max: 8 }), fc.integer({ min: -1, max: 8 })), { nil: undefined }),
          softcap: fc.option(fc.double({ min: 0.5, max: 30, noNaN: true }), { nil: undefined }),
          scale: fc.option(fc.double({ min: 0.05, max: 2, noNaN: true }), { nil: undefined }),
        }),
        async (c) => {
          const hq = c.hkv * c.group;
          const q = Tensor.randn([1, c.lq, hq, c.dim]);
          const k = Tensor.randn([1, c.lk, c.hkv, c.dim]);
          const v = Tensor.randn([1, c.lk, c.hkv, c.dim]);
          const options = { causal: c.causal, window: c.window, softcap: c.softcap, scale: c.scale };
          const { out, lse } = attention(q, k, v, options);
          const [qh, kh, vh, oh, lh] = await Promise.all([q, k, v, out, lse!].map((t) => t.toArray()));
          const ref = referenceAttention(
            { q: Float64Array.from(qh), k: Float64Array.from(kh), v: Float64Array.from(vh), lenQ: c.lq, lenK: c.lk },
            { headsQ: hq, headsKv: c.hkv, dim: c.dim, scale: c.scale ?? 1 / Math.sqrt(c.dim), causal: c.causal, windowLeft: c.window?.[0], windowRight: c.window?.[1], softcap: c.softcap },
          );
          for (const t of [q, k, v, out, lse!]) t.dispose();
          if (ref.out.some((x) => x !== 0)) expect(relL2(Array.from(oh), ref.out)).toBeLessThan(1e-5);
          else expect(Array.from(oh).every((x) => x === 0)).toBe(true);
          ref.lse.forEach((x, i) => (x === -Infinity ? expect(lh[i]).toBe(-Infinity) : expect(Math.abs(lh[i] - x)).toBeLessThan(1e-4 * (1 + Math.abs(x)))));
        },
      ),
      { numRuns: 200 },
    );
  }, 120_000);
});
