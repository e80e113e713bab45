import fc from 'fast-check';
import { mlaDecode, PagedLatentCache, synchronize, Tensor } from '../lib';
import { native } from '../lib/native';
import { gaussian, makeLatentCache, MLA_SCALE, randomModel, ShadowLatentCache } from './helpers/mla';
import { checkAccounting, checkBlockTable, tableWrites } from './helpers/paged';
import { expectThrows } from './helpers/throws';

// Relative L2 of the W_UV-projected output against decompressed float64 attention, and the largest
// lse difference. f32: float32 rounding of the absorbed query and the sums. bf16: rounding of the
// stored rows, queries and outputs. fp8e4m3: per-token quantization of the rows (3 mantissa bits);
// measured 3.2e-2 (output) and 0.03 (lse) with unit-variance latents and rope keys, 3.5e-2 / 0.07
// with rope keys twice as large (sharper softmax): the stated tolerance is 5e-2 / 0.15.
const TOL = { f32: { out: 1e-5, lse: 1e-4 }, bf16: { out: 1e-2, lse: 5e-2 }, fp8e4m3: { out: 5e-2, lse: 0.15 } } as const;

describe('MLA on the CPU equals decompressed float64 attention (absorption is exact)', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    test(`${dtype}: decode over sequences of lengths 1, 17, 100, 64 (16 heads, two layers)`, async () => {
      const shadow = new ShadowLatentCache(makeLatentCache('cpu', dtype, { pageSize: 16 }));
      const model = randomModel(16);
      const seqs = [shadow.add(), shadow.add(), shadow.add(), shadow.add()];
      // Uneven, batched appends crossing page boundaries at odd places; both input forms.
      await shadow.append(seqs, 0, [1, 10, 37, 64]);
      await shadow.append(seqs.slice(1), 0, [7, 63, 0], { splitRope: true });
      await shadow.append(seqs, 1, [1, 17, 100, 64], { splitRope: true });
      expect(seqs.map((s) => shadow.cache.length(s, 0))).toEqual([1, 17, 100, 64]);
      for (const layer of [0, 1]) {
        const err = await shadow.checkDecompressed(seqs, layer, model);
        expect(err.out).toBeLessThan(TOL[dtype].out);
        expect(err.lse).toBeLessThan(TOL[dtype].lse);
      }
      checkAccounting(shadow.cache);
    }, 60_000);
  }

  test('fp8e4m3 cache (f32 compute): decode within the stated quantization tolerance', async () => {
    const shadow = new ShadowLatentCache(makeLatentCache('cpu', 'fp8e4m3', { pageSize: 8 }));
    const model = randomModel(16);
    const seqs = [shadow.add(), shadow.add(), shadow.add()];
    // The rope key lives on a different scale than the latent: it gets its own fp8 scale.
    await shadow.append(seqs, 0, [5, 40, 90], { ropeStd: 2 });
    await shadow.append(seqs, 0, [3, 0, 11], { splitRope: true, ropeStd: 0.05 });
    const err = await shadow.checkDecompressed(seqs, 0, model);
    expect(err.out).toBeLessThan(TOL.fp8e4m3.out);
    expect(err.out).toBeGreaterThan(1e-4); // the quantization really happened
    expect(err.lse).toBeLessThan(TOL.fp8e4m3.lse);
  }, 60_000);

  test('fp8e4m3 cache with bf16 compute and multi-token decode', async () => {
    const shadow = new ShadowLatentCache(makeLatentCache('cpu', 'fp8e4m3', { computeDtype: 'bf16', pageSize: 4 }));
    const model = randomModel(16);
    const seqs = [shadow.add(), shadow.add()];
    await shadow.append(seqs, 1, [30, 9]);
    const err = await shadow.checkDecompressed(seqs, 1, model, { queryCounts: [2, 2] });
    expect(err.out).toBeLessThan(TOL.fp8e4m3.out);
  }, 60_000);

  test('prefill: several queries per sequence, causal (bottom-right) and not', async () => {
    const shadow = new ShadowLatentCache(makeLatentCache('cpu', 'f32', { pageSize: 4 }));
    const model = randomModel(16);
    const seqs = [shadow.add(), shadow.add()];
    await shadow.append(seqs, 0, [30, 9]);
    for (const options of [{ queryCounts: [5, 9] }, { queryCounts: [3, 1], causal: false }, { queryCounts: [0, 4] }]) {
      const err = await shadow.checkDecompressed(seqs, 0, model, options);
      expect(err.out).toBeLessThan(TOL.f32.out);
      expect(err.lse).toBeLessThan(TOL.f32.lse);
    }
  }, 60_000);

  test('softcap and a custom scale; 128 heads against the absorbed reference', async () => {
    const shadow = new ShadowLatentCache(makeLatentCache('cpu', 'f32', { pageSize: 32 }));
    const seqs = [shadow.add(), shadow.add()];
    await shadow.append(seqs, 0, [50, 23]);
    const err = await shadow.checkDecompressed(seqs, 0, randomModel(16), { softcap: 2, scale: 0.3 });
    expect(err.out).toBeLessThan(TOL.f32.out);
    const wide = await shadow.checkAbsorbed(seqs, 0, 128, { numSplits: 3 });
    expect(wide.out).toBeLessThan(TOL.f32.out);
    expect(wide.lse).toBeLessThan(TOL.f32.lse);
  }, 60_000);
});

describe('latent cache fork, copy-on-write and accounting', () => {
  for (const dtype of ['f32', 'fp8e4m3'] as const) {
    test(`${dtype}: a fork shares full pages and never sees the other side's writes`, async () => {
      const shadow = new ShadowLatentCache(makeLatentCache('cpu', dtype, { pageSize: 8, layers: 2 }));
      const model = randomModel(16);
      const a = shadow.add();
      await shadow.append([a], 0, [20]); // pages 0,1 full, page 2 partial
      await shadow.append([a], 1, [20]);
      const b = shadow.fork(a);
      expect(shadow.cache.usage().sharedPages).toBe(3);
      await shadow.append([a], 0, [3]); // copy-on-write of the partial page (rows and fp8 scales)
      expect(shadow.cache.usage().sharedPages).toBe(2);
      await shadow.append([b], 0, [9]);
      await shadow.append([b, a], 1, [2, 5]);
      const c = shadow.fork(b);
      await shadow.append([c], 1, [1]);
      const tol = TOL[dtype].out;
      for (const layer of [0, 1]) expect((await shadow.checkDecompressed([a, b, c], layer, model)).out).toBeLessThan(tol);
      shadow.free(b);
      for (const layer of [0, 1]) expect((await shadow.checkDecompressed([a, c], layer, model)).out).toBeLessThan(tol);
      checkAccounting(shadow.cache);
      const u = shadow.cache.usage();
      expect(u.bytesPerPage).toBe(2 * 8 * (576 * (dtype === 'f32' ? 4 : 1) + (dtype === 'f32' ? 0 : 8)));
    }, 60_000);
  }

  test('fuzzed append/fork/free: no page leaked or double-owned; running out changes nothing', async () => {
    const shadow = new ShadowLatentCache(makeLatentCache('cpu', 'bf16', { pageSize: 4, capacityPages: 30, maxSequences: 10, layers: 2 }));
    let outOfPages = 0;
    for (let step = 0; step < 200; step++) {
      const live = shadow.cache.sequences();
      const r = Math.random();
      if (live.length === 0 || (r < 0.15 && live.length < 10)) shadow.add();
      else if (r < 0.3 && live.length < 10) shadow.fork(live[Math.floor(Math.random() * live.length)]);
      else if (r < 0.4) shadow.free(live[Math.floor(Math.random() * live.length)]);
      else {
        const pick = live.filter(() => Math.random() < 0.5);
        if (pick.length === 0) pick.push(live[0]);
        const counts = pick.map(() => Math.floor(Math.random() * 9));
        const before = shadow.cache.debugState();
        try {
          await shadow.append(pick, Math.floor(Math.random() * 2), counts);
        } catch (e) {
          expect((e as Error).name).toBe('RangeError');
          expect((e as Error).message).toMatch(/PagedLatentCache is out of pages/);
          expect(shadow.cache.debugState()).toEqual(before);
          outOfPages++;
        }
      }
      checkAccounting(shadow.cache);
      await checkBlockTable(shadow.cache);
    }
    expect(outOfPages).toBeGreaterThan(0);
    const live = shadow.cache.sequences().filter((s) => shadow.cache.length(s, 0) > 0);
    if (live.length) expect((await shadow.checkAbsorbed(live, 0, 4)).out).toBeLessThan(TOL.bf16.out);
    for (const s of shadow.cache.sequences()) shadow.free(s);
    expect(shadow.cache.usage().freePages).toBe(30);
  }, 60_000);
});

describe('latent block-table entries travel with the append', () => {
  test('a lockstep decode batch crossing page boundaries together: no host table writes, the table follows the pages', async () => {
    const shadow = new ShadowLatentCache(makeLatentCache('cpu', 'f32', { pageSize: 4, layers: 1, capacityPages: 48 }));
    const seqs = Array.from({ length: 6 }, () => shadow.add());
    await shadow.append(seqs, 0, seqs.map((_, i) => 4 * (i + 1))); // page-aligned: steps 0 and 4 cross together
    const appendSpy = jest.spyOn(native, 'mlaAppend');
    try {
      for (let step = 0; step < 5; step++) {
        expect(await tableWrites(shadow.cache, () => shadow.append(seqs, 0, seqs.map(() => 1)))).toBe(0);
        await checkBlockTable(shadow.cache);
        const err = await shadow.checkAbsorbed(seqs, 0, 4);
        expect(err.out).toBeLessThan(TOL.f32.out);
        expect(err.lse).toBeLessThan(TOL.f32.lse);
      }
      expect(appendSpy.mock.calls.map((c) => c[6].tableIdx?.length ?? 0)).toEqual([6, 0, 0, 0, 6]);
    } finally {
      appendSpy.mockRestore();
    }
    checkAccounting(shadow.cache);
  }, 60_000);
});

describe('MLA argument errors', () => {
  const cache = makeLatentCache('cpu', 'f32');
  const s = cache.addSequence();
  cache.append(s, 0, Tensor.fromArray(gaussian(3 * 576), [3, 576]));
  const q = (n = 1, h = 2, w = 576) => Tensor.randn([n, h, w]);
  const opt = { scale: MLA_SCALE };
  test.each([
    ['page size', () => new PagedLatentCache({ layers: 1, capacityPages: 4, pageSize: 12 }), 'RangeError', /pageSize must be a power of two/],
    ['unknown option', () => new PagedLatentCache({ layers: 1, capacityPages: 4, kvHeads: 1 } as never), 'TypeError', /options.kvHeads is not a known option/],
    ['dtype', () => new PagedLatentCache({ layers: 1, capacityPages: 4, dtype: 'int8' }), 'RangeError', /options.dtype must be f32, f16, bf16 or fp8e4m3/],
    ['computeDtype', () => new PagedLatentCache({ layers: 1, capacityPages: 4, dtype: 'bf16', computeDtype: 'f32' }), 'RangeError', /computeDtype must be bf16 like options.dtype/],
    ['latent width', () => cache.append(s, 0, Tensor.randn([2, 512])), 'RangeError', /latent must be \[tokens, 576\]/],
    ['rope width', () => cache.append(s, 0, Tensor.randn([2, 512]), Tensor.randn([2, 32])), 'RangeError', /rope must be \[tokens, 64\]/],
    ['rope tokens', () => cache.append(s, 0, Tensor.randn([2, 512]), Tensor.randn([3, 64])), 'RangeError', /rope has 3 tokens, latent 2/],
    ['latent dtype', () => cache.append(s, 0, Tensor.randn([2, 576], { dtype: 'bf16' })), 'RangeError', /latent must be f32 on cpu/],
    ['unknown seq', () => cache.append(42, 0, Tensor.randn([1, 576])), 'RangeError', /seq 42 is not a live sequence/],
    ['counts', () => cache.append([s], 0, Tensor.randn([2, 576]), null, [3]), 'RangeError', /counts sum to 3/],
    ['layer', () => cache.append(s, 2, Tensor.randn([1, 576])), 'RangeError', /layer/],
    ['scale required', () => mlaDecode(q(), cache, 0, [s], {} as never), 'TypeError', /options.scale is required/],
    ['scale sign', () => mlaDecode(q(), cache, 0, [s], { scale: -1 }), 'RangeError', /options.scale must be > 0/],
    ['unknown decode option', () => mlaDecode(q(), cache, 0, [s], { scale: 1, window: [1, 1] } as never), 'TypeError', /options.window is not a known option/],
    ['q width', () => mlaDecode(q(1, 2, 512), cache, 0, [s], opt), 'RangeError', /q must be \[tokens, heads, 576\]/],
    ['q tokens', () => mlaDecode(q(2), cache, 0, [s], opt), 'RangeError', /q has 2 tokens but 1 sequences/],
    ['q dtype', () => mlaDecode(Tensor.randn([1, 2, 576], { dtype: 'bf16' }), cache, 0, [s], opt), 'RangeError', /q must be f32 on cpu/],
    ['empty layer', () => mlaDecode(q(), cache, 1, [s], opt), 'RangeError', /has no tokens in layer 1/],
    ['queryCounts', () => mlaDecode(q(4), cache, 0, [s], { ...opt, queryCounts: [4] }), 'RangeError', /exceeds the 3 tokens/],
    ['out shape', () => mlaDecode(q(), cache, 0, [s], { ...opt, out: Tensor.randn([1, 2, 576]) }), 'RangeError', /options.out must be f32 \[1,2,512\]/],
    ['not a cache', () => mlaDecode(q(), {} as never, 0, [s], opt), 'TypeError', /cache must be a PagedLatentCache/],
    ['seqs', () => mlaDecode(q(), cache, 0, [] as never, opt), 'TypeError', /seqs must be a non-empty array/],
  ] as const)('%s', (_n, fn, cls, msg) => expectThrows(fn, cls, msg));

  test('a 1-d block table reaching the binding is refused before its shape is read', () => {
    const table = Tensor.fromArray(Int32Array.from([0, 1]), [2], { dtype: 'int32' });
    const out = Tensor.empty([1, 2, 512]);
    const params = { scale: MLA_SCALE, softcap: 0, causal: true, rows: Int32Array.from([0]), seqLens: Int32Array.from([3]), numSplits: 0 };
    expectThrows(() => native.mlaAttention(q(), cache.pool, cache.scales, 0, table, out, null, params), 'RangeError', /blockTable must be a contiguous 2-d int32 tensor/);
  });

  test('disposed cache', () => {
    const c = makeLatentCache('cpu', 'f32');
    const id = c.addSequence();
    c.dispose();
    expectThrows(() => c.append(id, 0, Tensor.randn([1, 576])), 'TypeError', /PagedLatentCache has been disposed/);
    expectThrows(() => mlaDecode(q(), c, 0, [id], opt), 'TypeError', /PagedLatentCache has been disposed/);
    expectThrows(() => c.usage(), 'TypeError', /PagedLatentCache has been disposed/);
  });

  test('disposing inputs right after enqueueing is safe', async () => {
    const c = makeLatentCache('cpu', 'f32');
    const id = c.addSequence();
    const rows = Tensor.randn([40, 576]);
    c.append(id, 0, rows);
    rows.dispose();
    const qq = q(1, 4);
    const { out } = mlaDecode(qq, c, 0, [id], opt);
    qq.dispose();
    expect((await out.toArray()).every(Number.isFinite)).toBe(true);
  });
});

describe('MLA under hostile arguments', () => {
  // Each call returns or throws a TypeError/RangeError (by name: native errors come from another realm).
  async function namedOrOk(fn: () => unknown): Promise<void> {
    try {
      fn();
    } catch (e) {
      if (!(typeof e === 'object' && e !== null && ['TypeError', 'RangeError'].includes((e as Error).name))) throw new Error(`expected a TypeError or RangeError, got ${String(e)}`);
    }
  }
  const hostile: fc.Arbitrary<unknown> = fc.oneof(
    fc.constantFrom(undefined, null, NaN, -1, 0, 1, 3, 1.5, 2 ** 53, '', 'bf16', 'fp8e4m3', true, [], [0], [1, 2], {}, { scale: 1 }, { scale: -1 },
      { scale: 1, queryCounts: [9] }, { layers: 1, capacityPages: 2 }, { layers: 1, capacityPages: 2, dtype: 'fp8e4m3', pageSize: 3 }, new Int32Array(2)),
    fc.constant(null).map(() => Tensor.randn([1, 2, 576])),
    fc.constant(null).map(() => Tensor.randn([3, 576])),
    fc.constant(null).map(() => Tensor.randn([2, 512])),
    fc.constant(null).map(() => Tensor.randn([2, 64], { dtype: 'bf16' })),
    fc.constant(null).map(() => {
      const t = Tensor.randn([2, 576]);
      t.dispose();
      return t;
    }),
    fc.integer({ min: -3, max: 40 }),
    fc.array(fc.integer({ min: -2, max: 5 }), { maxLength: 3 }),
  );
  const cache = makeLatentCache('cpu', 'fp8e4m3', { layers: 1, pageSize: 2, capacityPages: 8, maxSequences: 4 });
  const seq = cache.addSequence();
  cache.append(seq, 0, Tensor.randn([3, 576]));
  const targets: Array<[string, (a: unknown[]) => unknown]> = [
    ['PagedLatentCache', (a) => new PagedLatentCache(a[0] as never).dispose()],
    ['append', (a) => cache.append(a[0] as never, a[1] as never, a[2] as never, a[3] as never, a[4] as never)],
    ['append (valid seq)', (a) => cache.append(seq, 0, a[0] as never, a[1] as never, a[2] as never)],
    ['fork/free', (a) => cache.free(cache.fork(a[0] as never))],
    ['mlaDecode', (a) => mlaDecode(a[0] as never, cache, a[1] as never, a[2] as never, a[3] as never)],
    ['mlaDecode (valid q)', (a) => mlaDecode(Tensor.randn([1, 2, 576]), a[0] as never, 0, [seq], a[1] as never)],
  ];
  test.each(targets)('%s', async (_name, call) => {
    await fc.assert(fc.asyncProperty(fc.array(hostile, { maxLength: 5 }), async (args) => namedOrOk(() => call(args))), { numRuns: 150 });
    await synchronize('cpu');
    expect(cache.length(seq)).toBeGreaterThanOrEqual(3); // still consistent and usable
    checkAccounting(cache);
  }, 60_000);
});
