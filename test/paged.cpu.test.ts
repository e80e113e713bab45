import { PagedKVCache, pagedAttention, Tensor } from '../lib';
import { native } from '../lib/native';
import { checkAccounting, checkBlockTable, fuzzLifecycleStep, makeCache, ShadowCache, tableWrites } from './helpers/paged';
import { expectThrows } from './helpers/throws';

const TOL = { f32: 2e-5, bf16: 1e-2, f16: 3e-3 } as const;

describe('paged attention on the CPU equals dense attention on the gathered KV', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    test(`${dtype}: decode over sequences of lengths 1, 17, 100, 64 (GQA 4:1, two layers)`, async () => {
      const shadow = new ShadowCache(makeCache('cpu', dtype, { pageSize: 16 }));
      const seqs = [shadow.add(), shadow.add(), shadow.add(), shadow.add()];
      // Append in uneven chunks, batched across sequences, to cross page boundaries at odd places.
      await shadow.append(seqs, 0, [1, 10, 37, 64]);
      await shadow.append(seqs.slice(1), 0, [7, 63, 0]);
      await shadow.append(seqs, 1, [1, 17, 100, 64]);
      expect(seqs.map((s) => shadow.cache.length(s, 0))).toEqual([1, 17, 100, 64]);
      for (const layer of [0, 1]) expect(await shadow.check(seqs, layer, 8)).toBeLessThan(TOL[dtype]);
      checkAccounting(shadow.cache);
    });
  }

  test('page slots past a sequence\'s end hold NaN: none reaches the output', async () => {
    for (const dtype of ['f32', 'bf16'] as const) {
      const cache = makeCache('cpu', dtype, { pageSize: 16, capacityPages: 64 });
      cache.pool.copyFrom(Tensor.full([...cache.pool.shape], NaN, { dtype, device: 'cpu' }));
      const shadow = new ShadowCache(cache);
      const seqs = [shadow.add(), shadow.add()];
      await shadow.append(seqs, 0, [5, 301]);
      for (const numSplits of [undefined, 1, 3]) expect(await shadow.check(seqs, 0, 8, { numSplits })).toBeLessThan(TOL[dtype]);
      expect(await shadow.check(seqs, 0, 8, { queryCounts: [2, 9] })).toBeLessThan(TOL[dtype]);
    }
  });

  test('prefill: several queries per sequence, causal and non-causal', async () => {
    const shadow = new ShadowCache(makeCache('cpu', 'f32', { pageSize: 4 }));
    const seqs = [shadow.add(), shadow.add()];
    await shadow.append(seqs, 0, [30, 9]);
    expect(await shadow.check(seqs, 0, 4, { queryCounts: [5, 9] })).toBeLessThan(TOL.f32);
    expect(await shadow.check(seqs, 0, 4, { queryCounts: [3, 1], causal: false })).toBeLessThan(TOL.f32);
  });

  test('prefill of 16+ rows per sequence (row blocks over gathered chunks) beside short ones', async () => {
    for (const dtype of ['f32', 'bf16'] as const) {
      const shadow = new ShadowCache(makeCache('cpu', dtype, { pageSize: 4, kvHeads: 2 }));
      const seqs = [shadow.add(), shadow.add(), shadow.add()];
      await shadow.append(seqs, 0, [150, 70, 9]);
      expect(await shadow.check(seqs, 0, 4, { queryCounts: [100, 17, 1] })).toBeLessThan(TOL[dtype]);
      expect(await shadow.check(seqs, 0, 4, { queryCounts: [150, 64, 3], causal: false })).toBeLessThan(TOL[dtype]);
      const options = { queryCounts: [80, 20, 1], window: [30, 2] as [number, number], softcap: 4, alibiSlopes: [0.2, 0.1, 0.05, 0.01] };
      expect(await shadow.check(seqs, 0, 4, options)).toBeLessThan(TOL[dtype]);
    }
  });

  test('decode in key chunks: f32 read in place (pages of 16) or gathered, head dims off 16, groups past 64 heads', async () => {
    for (const [dtype, pageSize, headDim, kvHeads, heads] of [
      ['f32', 16, 24, 2, 8], ['f32', 32, 16, 1, 136], ['f32', 4, 32, 2, 8], ['bf16', 16, 48, 2, 6],
    ] as const) {
      // 136 heads over one kv head: with few threads a work item holds all of them (> 64 rows).
      const shadow = new ShadowCache(makeCache('cpu', dtype, { pageSize, headDim, kvHeads, layers: 1 }));
      const seqs = [shadow.add(), shadow.add(), shadow.add(), shadow.add(), shadow.add()];
      await shadow.append(seqs, 0, [300, 33, 16, 1, 77]);
      expect(await shadow.check(seqs, 0, heads)).toBeLessThan(TOL[dtype]);
      expect(await shadow.check(seqs, 0, heads, { window: [70, -1], softcap: 6 })).toBeLessThan(TOL[dtype]);
      const alibiSlopes = Array.from({ length: heads }, (_, h) => 0.3 / (h + 1));
      expect(await shadow.check(seqs, 0, heads, { alibiSlopes, numSplits: 2 })).toBeLessThan(TOL[dtype]);
    }
  });

  test('options: window, softcap, scale, ALiBi', async () => {
    const shadow = new ShadowCache(makeCache('cpu', 'f32', { kvHeads: 1 }));
    const seqs = [shadow.add(), shadow.add()];
    await shadow.append(seqs, 0, [50, 23]);
    expect(await shadow.check(seqs, 0, 2, { window: [10, -1] })).toBeLessThan(TOL.f32);
    expect(await shadow.check(seqs, 0, 2, { softcap: 3, scale: 0.7 })).toBeLessThan(TOL.f32);
    expect(await shadow.check(seqs, 0, 2, { alibiSlopes: [0.3, 0.05], queryCounts: [4, 2] })).toBeLessThan(TOL.f32);
  });
});

describe('fork and copy-on-write', () => {
  test('a fork shares full pages and never sees the other side\'s writes', async () => {
    const shadow = new ShadowCache(makeCache('cpu', 'f32', { pageSize: 8, layers: 2 }));
    const a = shadow.add();
    await shadow.append([a], 0, [20]); // pages 0,1 full, page 2 partial (4 of 8)
    await shadow.append([a], 1, [20]);
    const b = shadow.fork(a);
    expect(shadow.cache.usage().sharedPages).toBe(3);
    await shadow.append([a], 0, [3]); // a writes into the shared partial page: copied first
    expect(shadow.cache.usage().sharedPages).toBe(2);
    await shadow.append([b], 0, [9]); // b now owns the old partial page alone, writes in place, then a new page
    await shadow.append([b, a], 1, [2, 5]);
    const c = shadow.fork(b);
    await shadow.append([c], 1, [1]);
    for (const layer of [0, 1]) expect(await shadow.check([a, b, c], layer, 4)).toBeLessThan(TOL.f32);
    shadow.free(b);
    for (const layer of [0, 1]) expect(await shadow.check([a, c], layer, 4)).toBeLessThan(TOL.f32);
    checkAccounting(shadow.cache);
    await checkBlockTable(shadow.cache);
  });
});

describe('block-table entries travel with the append', () => {
  test('a lockstep decode batch crossing page boundaries together: no host table writes, the table follows the pages', async () => {
    const shadow = new ShadowCache(makeCache('cpu', 'f32', { pageSize: 4, capacityPages: 128, maxSequences: 12 }));
    const seqs = Array.from({ length: 8 }, () => shadow.add());
    // Page-aligned prefills: decode steps 0, 4 and 8 cross a page boundary in every sequence at once.
    for (const layer of [0, 1]) await shadow.append(seqs, layer, seqs.map((_, i) => 4 * (i + 1)));
    const appendSpy = jest.spyOn(native, 'pagedAppend');
    try {
      for (let step = 0; step < 9; step++) {
        for (const layer of [0, 1]) {
          expect(await tableWrites(shadow.cache, () => shadow.append(seqs, layer, seqs.map(() => 1)))).toBe(0);
          expect(await shadow.check(seqs, layer, 4)).toBeLessThan(TOL.f32);
        }
        await checkBlockTable(shadow.cache);
      }
      // A page holds every layer: layer 0 allocates the new pages, and its append alone carries them.
      const entries = appendSpy.mock.calls.map((c) => c[5].tableIdx?.length ?? 0);
      expect(entries).toEqual(Array.from({ length: 18 }, (_, i) => (i % 2 === 0 && (i / 2) % 4 === 0 ? seqs.length : 0)));
      // Copy-on-write replaces an entry instead of adding one: fork into the shared partial page.
      let fork = -1;
      expect(await tableWrites(shadow.cache, () => (fork = shadow.fork(seqs[0])))).toBe(1); // fork keeps its row write
      for (const layer of [0, 1]) {
        expect(await tableWrites(shadow.cache, () => shadow.append([fork, seqs[0]], layer, [1, 2]))).toBe(0);
        await checkBlockTable(shadow.cache);
        expect(await shadow.check([...seqs, fork], layer, 4)).toBeLessThan(TOL.f32);
      }
      expect(appendSpy.mock.calls.slice(18).map((c) => c[5].tableIdx?.length ?? 0)).toEqual([1, 0]);
      checkAccounting(shadow.cache);
    } finally {
      appendSpy.mockRestore();
    }
  });

  test('an append whose native call throws still leaves its pages in the device table', async () => {
    const shadow = new ShadowCache(makeCache('cpu', 'f32', { pageSize: 4 }));
    const [a, b] = [shadow.add(), shadow.add()];
    await shadow.append([a, b], 0, [4, 4]);
    const appendSpy = jest.spyOn(native, 'pagedAppend').mockImplementationOnce(() => {
      throw new RangeError('injected');
    });
    try {
      await expect(shadow.append([a, b], 0, [3, 2])).rejects.toThrow('injected');
    } finally {
      appendSpy.mockRestore();
    }
    await checkBlockTable(shadow.cache);
    // The retry writes into the pages the failed append took, found through the device table.
    await shadow.append([a, b], 0, [3, 2]);
    expect(await shadow.check([a, b], 0, 4)).toBeLessThan(TOL.f32);
    checkAccounting(shadow.cache);
  });
});

describe('page accounting under fuzzed append/fork/free', () => {
  test('no page is leaked or double-owned; running out of pages changes nothing', async () => {
    const shadow = new ShadowCache(makeCache('cpu', 'f32', { pageSize: 4, capacityPages: 40, maxSequences: 12, headDim: 16, kvHeads: 1, layers: 2 }));
    let outOfPages = 0;
    for (let step = 0; step < 300; step++) {
      if (!fuzzLifecycleStep(shadow, 12, { add: 0.15, fork: 0.3, free: 0.4 })) {
        const live = shadow.cache.sequences();
        const pick = live.filter(() => Math.random() < 0.5);
        if (pick.length === 0) pick.push(live[0]);
        const counts = pick.map(() => Math.floor(Math.random() * 9));
        const layer = Math.floor(Math.random() * 2);
        const before = shadow.cache.debugState();
        try {
          await shadow.append(pick, layer, counts);
        } catch (e) {
          expect((e as Error).name).toBe('RangeError');
          expect((e as Error).message).toMatch(/out of pages/);
          expect(shadow.cache.debugState()).toEqual(before);
          outOfPages++;
        }
      }
      checkAccounting(shadow.cache);
      await checkBlockTable(shadow.cache);
    }
    expect(outOfPages).toBeGreaterThan(0); // the run did reach the limit
    // The contents survived all of it.
    const live = shadow.cache.sequences().filter((s) => shadow.cache.length(s, 0) > 0);
    if (live.length) expect(await shadow.check(live, 0, 2)).toBeLessThan(TOL.f32);
    for (const s of shadow.cache.sequences()) shadow.free(s);
    expect(shadow.cache.usage().freePages).toBe(40);
  });
});

describe('paged argument errors', () => {
  const cache = makeCache('cpu', 'f32');
  const s = cache.addSequence();
  cache.append(s, 0, Tensor.randn([3, 2, 32]), Tensor.randn([3, 2, 32]));
  test.each([
    ['bad option', () => new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 8, capacityPages: 4, pageSize: 12 }), 'RangeError', /pageSize must be a power of two/],
    ['unknown option', () => new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 8, capacityPages: 4, size: 1 } as never), 'TypeError', /options.size/],
    ['unknown seq', () => cache.append(99, 0, Tensor.randn([1, 2, 32]), Tensor.randn([1, 2, 32])), 'RangeError', /seq 99 is not a live sequence/],
    ['k shape', () => cache.append(s, 0, Tensor.randn([1, 3, 32]), Tensor.randn([1, 3, 32])), 'RangeError', /k must be \[tokens, 2, 32\]/],
    ['k dtype', () => cache.append(s, 0, Tensor.randn([1, 2, 32], { dtype: 'bf16' }), Tensor.randn([1, 2, 32])), 'RangeError', /k must be f32/],
    ['layer', () => cache.append(s, 5, Tensor.randn([1, 2, 32]), Tensor.randn([1, 2, 32])), 'RangeError', /layer/],
    ['counts', () => cache.append([s], 0, Tensor.randn([2, 2, 32]), Tensor.randn([2, 2, 32]), [3]), 'RangeError', /counts sum to 3/],
    ['counts entry', () => cache.append([s], 0, Tensor.randn([2, 2, 32]), Tensor.randn([2, 2, 32]), [-2]), 'RangeError', /counts\[0\] must be an integer/],
    ['counts type', () => cache.append([s], 0, Tensor.randn([2, 2, 32]), Tensor.randn([2, 2, 32]), ['2' as never]), 'TypeError', /counts\[0\] must be a number/],
    ['unknown seq in a list', () => cache.append([s, 77], 0, Tensor.randn([2, 2, 32]), Tensor.randn([2, 2, 32]), [1, 1]), 'RangeError', /seq\[1\] 77 is not a live sequence/],
    ['seq twice', () => cache.append([s, s], 0, Tensor.randn([2, 2, 32]), Tensor.randn([2, 2, 32]), [1, 1]), 'RangeError', /lists a sequence twice/],
    ['unknown seq in seqs', () => pagedAttention(Tensor.randn([2, 2, 32]), cache, 0, [s, 99]), 'RangeError', /seqs\[1\] 99 is not a live sequence/],
    ['seqs entry type', () => pagedAttention(Tensor.randn([2, 2, 32]), cache, 0, [s, 'x' as never]), 'TypeError', /seqs\[1\] must be a sequence id/],
    ['q heads', () => pagedAttention(Tensor.randn([1, 3, 32]), cache, 0, [s]), 'RangeError', /multiple of the cache's kv heads/],
    ['q tokens', () => pagedAttention(Tensor.randn([2, 2, 32]), cache, 0, [s]), 'RangeError', /q has 2 tokens but 1 sequences/],
    ['empty layer', () => pagedAttention(Tensor.randn([1, 2, 32]), cache, 1, [s]), 'RangeError', /has no tokens in layer 1/],
    ['queryCounts', () => pagedAttention(Tensor.randn([4, 2, 32]), cache, 0, [s], { queryCounts: [4] }), 'RangeError', /exceeds the 3 tokens/],
    ['not a cache', () => pagedAttention(Tensor.randn([1, 2, 32]), {} as never, 0, [s]), 'TypeError', /cache must be a PagedKVCache/],
  ] as const)('%s', (_n, fn, cls, msg) => expectThrows(fn, cls, msg));

  test('too many sequences', () => {
    const c = makeCache('cpu', 'f32', { maxSequences: 2 });
    c.addSequence();
    c.addSequence();
    expectThrows(() => c.addSequence(), 'RangeError', /maxSequences/);
  });
});
