import { attention, PagedKVCache, pagedAttention, Tensor } from '../lib';
import { ShadowCache } from './helpers/paged';
import { accuracy, caseFor, CONTRACT, expectMeets, makeInputs, QuantCase, quantCases, quantContract, referenceOf, runQuant } from './helpers/quant';
import { expectThrows } from './helpers/throws';
import { KV_CONTRACT, kvContract, quantKvCases, runKvCase } from './helpers/quant_kv';

describe('quantized attention on the CPU meets the accuracy contract against float64', () => {
  for (const mode of ['int8', 'int8-fp8', 'fp8'] as const) {
    describe(mode, () => {
      for (const kind of ['random', 'heavy', 'shared'] as const) {
        test.each(quantCases([64]).concat(quantCases([40]).slice(0, 2)))(`${kind} %s`, async (_name, c0) => {
          const c = caseFor(c0, kind);
          const x = makeInputs(c, kind);
          const [got, want] = await Promise.all([runQuant(c, x, 'bf16', 'cpu', mode), referenceOf(c, x, 'bf16')]);
          expectMeets(accuracy(got, want), quantContract(mode, kind, c));
        });
      }
    });
  }

  test('outlier channels large in Q and K alike: the rotation keeps int8 within the contract, quantOutliers cuts its error further', async () => {
    // They set both int8 scales unless rotated away (a head dim that is a power of two) or kept out
    // of the 8-bit dot. 30 CPU draws each, int8 relative L2: d48 (not rotated) 3.9e-2 .. 8.6e-2; d64
    // rotated 1.4e-2 .. 2.0e-2; with quantOutliers ~0.3% (5.2x under the rotated error at least).
    const c: QuantCase = { lenQ: [256], lenK: [256], headsQ: 2, headsKv: 2, dim: 64 };
    const x = makeInputs(c, 'shared');
    const want = await referenceOf(c, x, 'bf16');
    const rotated = accuracy(await runQuant(c, x, 'bf16', 'cpu', 'int8'), want);
    const on = accuracy(await runQuant(caseFor(c, 'shared'), x, 'bf16', 'cpu', 'int8'), want);
    expect(rotated.rel).toBeLessThan(CONTRACT.int8.shared.rel);
    expect(rotated.cos).toBeGreaterThanOrEqual(CONTRACT.int8.shared.cos);
    expect(on.rel).toBeLessThan(rotated.rel / 2.5);
    const c48: QuantCase = { ...c, dim: 48 };
    const x48 = makeInputs(c48, 'shared');
    const unrotated = accuracy(await runQuant(c48, x48, 'bf16', 'cpu', 'int8'), await referenceOf(c48, x48, 'bf16'));
    expect(unrotated.rel).toBeGreaterThan(1.5 * rotated.rel);
  });

  test('f32 and f16 inputs, head dim 128, long causal sequence', async () => {
    const c: QuantCase = { lenQ: [700], lenK: [700], headsQ: 1, headsKv: 1, dim: 128, options: { causal: true } };
    for (const dtype of ['f32', 'f16'] as const) {
      const x = makeInputs(c, 'heavy');
      const [got, want] = await Promise.all([runQuant(c, x, dtype, 'cpu', 'int8'), referenceOf(c, x, dtype)]);
      const a = accuracy(got, want);
      const bound = quantContract('int8', 'heavy', c);
      expect(a.cos).toBeGreaterThanOrEqual(bound.cos);
      expect(a.rel).toBeLessThanOrEqual(bound.rel);
    }
  });

  test('K smoothing: a per-channel K offset changes the output by nothing and the lse by scale * q . offset', async () => {
    // Without smoothing, a +-40 offset would take the int8 K scale with it and wreck the scores.
    const c: QuantCase = { lenQ: [200], lenK: [200], headsQ: 1, headsKv: 1, dim: 64 };
    const x = makeInputs(c, 'random');
    const offset = Array.from({ length: 64 }, (_, i) => (i % 3 === 0 ? 40 : -15) + i * 0.25);
    const shifted = { ...x, k: x.k.map((v, i) => v + offset[i % 64]) };
    const want = await referenceOf(c, x, 'f32');
    for (const mode of ['int8', 'int8-fp8', 'fp8'] as const) {
      const [a, b] = await Promise.all([runQuant(c, x, 'f32', 'cpu', mode), runQuant(c, shifted, 'f32', 'cpu', mode)]);
      // The offset only moves a few values across rounding boundaries (300 draws: relative L2 at
      // most 0.07% / 0.38% / 0.51% for int8 / int8-fp8 / fp8, about a tenth of the modes' own
      // error), so it stays under a quarter of the mode's error on these inputs. A fixed cos
      // > 0.99999 failed about one draw in 300 (fp8: a changed K block scale moves the whole block).
      expect(accuracy(b, a).rel).toBeLessThan(0.25 * accuracy(a, want).rel);
      for (let i = 0; i < 200; i++) {
        let qo = 0;
        for (let d = 0; d < 64; d++) qo += x.q[i * 64 + d] * offset[d];
        expect(Math.abs(b.lse[i] - a.lse[i] - qo / 8)).toBeLessThan(1e-2 * (1 + Math.abs(qo / 8)));
      }
    }
  });
});

describe('quantized attention argument errors', () => {
  const q = Tensor.randn([1, 8, 2, 16]);
  const k = Tensor.randn([1, 8, 2, 16]);
  test.each([
    ['unknown mode', () => attention(q, k, k, { quantized: 'int4' as never }), 'RangeError', /options.quantized must be 'int8-fp8', 'int8' or 'fp8', got 'int4'/],
    ['outliers without a mode', () => attention(q, k, k, { quantOutliers: true }), 'RangeError', /options.quantOutliers needs options.quantized/],
    ['outliers type', () => attention(q, k, k, { quantized: 'int8', quantOutliers: 1 as never }), 'TypeError', /options.quantOutliers must be a boolean/],
    ['mode type', () => attention(q, k, k, { quantized: 1 as never }), 'TypeError', /options.quantized must be 'int8-fp8', 'int8' or 'fp8'/],
    ['softcap', () => attention(q, k, k, { quantized: 'int8', softcap: 5 }), 'RangeError', /does not support options.softcap/],
    ['alibi', () => attention(q, k, k, { quantized: 'int8-fp8', alibiSlopes: [0.1, 0.2] }), 'RangeError', /does not support options.alibiSlopes/],
    ['int dtype', () => attention(Tensor.full([1, 8, 2, 16], 1, { dtype: 'int8' }), Tensor.full([1, 8, 2, 16], 1, { dtype: 'int8' }), Tensor.full([1, 8, 2, 16], 1, { dtype: 'int8' }), { quantized: 'int8' }), 'RangeError', /quantizedAttention on cpu has no kernel for dtype int8/],
  ] as const)('%s', (_n, fn, cls, msg) => expectThrows(fn, cls, msg));
});

describe('quantized paged KV cache on the CPU meets the accuracy contract against float64', () => {
  test.each(quantKvCases('cpu'))('%s', async (_name, c) => {
    expectMeets(await runKvCase(c), kvContract(_name, c));
  });
});

describe('quantized paged KV cache: fork, copy-on-write and errors', () => {
  test.each(['int8', 'fp8'] as const)('%s: a fork shares pages; a copied page keeps its scales', async (dtype) => {
    const shadow = new ShadowCache(new PagedKVCache({ layers: 2, kvHeads: 2, headDim: 32, pageSize: 8, capacityPages: 32, dtype, device: 'cpu' }));
    const a = shadow.add();
    await shadow.append([a], 1, [20]); // pages 0, 1 full, page 2 holds 4 tokens
    const b = shadow.fork(a);
    await shadow.append([a], 1, [3]); // a writes into the shared partial page: copied (pages and scales) first
    await shadow.append([b], 1, [9]);
    for (const seqs of [[a, b], [b], [a]]) {
      await shadow.check(seqs, 1, 4);
      expect(shadow.lastError.out).toBeLessThan(KV_CONTRACT[dtype].rel);
      expect(shadow.lastError.lse).toBeLessThan(1e-2);
    }
  });

  test('options and argument errors', () => {
    expectThrows(() => new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 8, capacityPages: 4, dtype: 'int32' }), 'RangeError', /options.dtype must be f32, f16, bf16, fp8 \(fp8e4m3\) or int8/);
    expectThrows(() => new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 8, capacityPages: 4, dtype: 'fp8', computeDtype: 'int8' }), 'RangeError', /options.computeDtype must be f32, f16 or bf16/);
    expectThrows(() => new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 8, capacityPages: 4, dtype: 'f32', computeDtype: 'bf16' }), 'RangeError', /equal dtype unless/);
    const cache = new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 8, capacityPages: 4, dtype: 'int8', computeDtype: 'bf16', device: 'cpu' });
    expect(cache.quantized).toBe(true);
    const s = cache.addSequence();
    expectThrows(() => cache.append(s, 0, Tensor.randn([2, 1, 8]), Tensor.randn([2, 1, 8])), 'RangeError', /k must be bf16 on cpu like the cache/);
    cache.append(s, 0, Tensor.randn([2, 1, 8], { dtype: 'bf16' }), Tensor.randn([2, 1, 8], { dtype: 'bf16' }));
    expectThrows(() => pagedAttention(Tensor.randn([1, 1, 8]), cache, 0, [s]), 'RangeError', /q must be bf16 on cpu like the cache/);
    expect(cache.usage().bytesPerPage).toBe(2 * 16 * (8 + 4));
  });
});
