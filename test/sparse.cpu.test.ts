import { attention, BlockSparseMask, DType, PagedKVCache, pagedAttention, Tensor } from '../lib';
import { makeCache } from './helpers/paged';
import { radialGrid, runSparseCase, slidingGrid, sparseCases } from './helpers/sparse';
import { expectThrows } from './helpers/throws';
import { checkTopK, expectedChannels, makeTopKCache, topKMatchesFull } from './helpers/topk';

const TOL = { f32: 2e-5, bf16: 1e-2 } as const;

describe('CPU block-sparse attention equals dense attention with the explicit mask (float64)', () => {
  for (const [dtype, dims] of [['f32', [16, 64]], ['bf16', [32]]] as Array<[DType, number[]]>) {
    describe(dtype, () => {
      test.each(dims.flatMap((d) => sparseCases(d)))('%s', async (_name, c) => {
        const r = await runSparseCase(c, dtype, 'cpu');
        expect(r.errOut).toBeLessThan(r.tolerance);
        expect(r.errLse).toBeLessThan(1e-5);
      });
    });
  }

  test('a mask listing every block gives exactly the dense result', async () => {
    const q = Tensor.randn([2, 300, 4, 32]);
    const k = Tensor.randn([2, 333, 2, 32]);
    const v = Tensor.randn([2, 333, 2, 32]);
    const full = BlockSparseMask.fromDense(new Array(3 * 3).fill(1), { numQBlocks: 3, numKBlocks: 3 });
    for (const options of [{}, { causal: true }, { window: [100, 20] as [number, number] }]) {
      const a = attention(q, k, v, options);
      const b = attention(q, k, v, { ...options, blockMask: full });
      expect(Array.from(await b.out.toArray())).toEqual(Array.from(await a.out.toArray()));
      expect(Array.from(await b.lse!.toArray())).toEqual(Array.from(await a.lse!.toArray()));
    }
  });
});

describe('mask builders', () => {
  test('slidingWindowWithSinks lists exactly the documented blocks', () => {
    for (const [lq, lk, w, s, causal] of [[1000, 1000, 2, 1, true], [700, 1300, 1, 2, false], [1300, 700, 0, 1, true], [129, 129, 3, 0, false]] as const) {
      const m = BlockSparseMask.slidingWindowWithSinks({ seqLenQ: lq, seqLenK: lk, windowBlocks: w, sinkBlocks: s, causal });
      const want = slidingGrid(lq, lk, w, s, causal);
      expect(Array.from(m.toDense())).toEqual(Array.from(want));
      expect(m.density()).toBeCloseTo(want.reduce((a, b) => a + b, 0) / want.length, 12);
    }
  });

  test('radial lists exactly the documented blocks and its density halves with distance', () => {
    for (const [l, band, causal] of [[128 * 40, 1, true], [128 * 33 + 5, 2, false], [1000, 1, false]] as const) {
      const m = BlockSparseMask.radial({ seqLenQ: l, bandBlocks: band, causal });
      expect(Array.from(m.toDense())).toEqual(Array.from(radialGrid(l, l, band, 0, causal)));
    }
    // Row 0 of a 64-block radial mask: the band, then one block per ring at distances 2, 4, 8, ...
    const m = BlockSparseMask.radial({ seqLenQ: 128 * 64, bandBlocks: 1 });
    expect(Array.from(m.blocks(0, 0, 0))).toEqual([0, 1, 2, 4, 8, 16, 32]);
    expect(m.density()).toBeLessThan(0.25);
  });

  test('heads / batch replicate one pattern; fromCsr round-trips fromDense', () => {
    const m = BlockSparseMask.slidingWindowWithSinks({ seqLenQ: 600, windowBlocks: 1, heads: 3, batch: 2, causal: true });
    expect(m.nnz).toBe(6 * BlockSparseMask.slidingWindowWithSinks({ seqLenQ: 600, windowBlocks: 1, causal: true }).nnz);
    expect(Array.from(m.blocks(1, 2, 4))).toEqual([0, 3, 4]);
    const grid = Uint8Array.from({ length: 2 * 3 * 4 }, () => (Math.random() < 0.5 ? 1 : 0));
    const a = BlockSparseMask.fromDense(grid, { heads: 2, numQBlocks: 3, numKBlocks: 4 });
    const rowPtr: number[] = [];
    const colIdx: number[] = [];
    for (let h = 0; h < 2; h++) {
      for (let i = 0; i < 3; i++) {
        rowPtr.push(colIdx.length);
        colIdx.push(...a.blocks(0, h, i));
      }
      rowPtr.push(colIdx.length);
    }
    const b = BlockSparseMask.fromCsr(rowPtr, colIdx, { heads: 2, numQBlocks: 3, numKBlocks: 4 });
    expect(Array.from(b.toDense())).toEqual(Array.from(grid));
  });
});

describe('mask builders list only the kept blocks (work proportional to nnz)', () => {
  const B = 128;
  const randInt = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));
  const pick = <T>(...xs: T[]): T => xs[Math.floor(Math.random() * xs.length)];

  /**
   * The documented rules, cell by cell over the whole grid: query block i covers rows
   * [128 i, min(128 i + 128, lq)), row r sits at key r + lk - lq, and its diagonal blocks are those
   * of its first and last keys. Returns the CSR of one (batch, head) entry.
   */
  function bruteForce(lq: number, lk: number, keep: (c: number, lo: number, hi: number) => boolean, causal: boolean): { rowPtr: number[]; colIdx: number[] } {
    const rowPtr = [0];
    const colIdx: number[] = [];
    for (let i = 0; i < Math.ceil(lq / B); i++) {
      const lo = Math.floor((i * B + lk - lq) / B);
      const hi = Math.floor((Math.min(i * B + B, lq) - 1 + lk - lq) / B);
      for (let c = 0; c < Math.ceil(lk / B); c++) if (!(causal && c > hi) && keep(c, lo, hi)) colIdx.push(c);
      rowPtr.push(colIdx.length);
    }
    return { rowPtr, colIdx };
  }

  function slidingRule(window: number, sinks: number, causal: boolean) {
    return (c: number, lo: number, hi: number): boolean => c < sinks || (c >= lo - window && c <= hi + (causal ? 0 : window));
  }

  function radialRule(band: number, sinks: number) {
    return (c: number, lo: number, hi: number): boolean => {
      if (c < sinks) return true;
      const dist = Math.max(lo - c, c - hi, 0);
      if (dist <= band) return true;
      // the ring s with band * 2^(s-1) < dist <= band * 2^s keeps every 2^s-th block
      let ring = 1;
      while (band * 2 ** ring < dist) ring++;
      return c % 2 ** ring === 0;
    };
  }

  /** Expected CSR of the whole mask: the one entry repeated batch * heads times, offsets absolute. */
  function repeated(one: { rowPtr: number[]; colIdx: number[] }, copies: number): { rowPtr: number[]; colIdx: number[] } {
    const nnz = one.colIdx.length;
    const rowPtr: number[] = [];
    const colIdx: number[] = [];
    for (let bh = 0; bh < copies; bh++) {
      rowPtr.push(...one.rowPtr.map((x) => x + bh * nnz));
      colIdx.push(...one.colIdx);
    }
    return { rowPtr, colIdx: colIdx.length ? colIdx : [0] };
  }

  const randomShape = () => {
    const big = Math.random() < 0.25;
    const len = (): number => (Math.random() < 0.2 ? B * randInt(1, big ? 60 : 12) : randInt(1, B * (big ? 60 : 12)));
    const seqLenQ = len();
    const seqLenK = pick<number | undefined>(undefined, len(), len());
    return { seqLenQ, seqLenK, batch: randInt(1, 3), heads: randInt(1, 3), causal: pick<boolean | undefined>(undefined, false, true) };
  };

  test('slidingWindowWithSinks equals the brute-force rule on random shapes', async () => {
    for (let t = 0; t < 150; t++) {
      const o = { ...randomShape(), windowBlocks: pick(randInt(0, 4), randInt(0, 70)), sinkBlocks: pick<number | undefined>(undefined, randInt(0, 3), randInt(0, 70)) };
      const m = BlockSparseMask.slidingWindowWithSinks(o);
      const want = repeated(bruteForce(o.seqLenQ, o.seqLenK ?? o.seqLenQ, slidingRule(o.windowBlocks, o.sinkBlocks ?? 1, o.causal ?? false), o.causal ?? false), o.batch * o.heads);
      const got = { rowPtr: Array.from(await m.rowPtr.toArray()), colIdx: Array.from(await m.colIdx.toArray()) };
      expect({ o, ...got }).toEqual({ o, ...want });
      expect(m.nnz).toBe(want.rowPtr[want.rowPtr.length - 1]);
      m.dispose();
    }
  });

  test('radial equals the brute-force rule on random shapes', async () => {
    for (let t = 0; t < 150; t++) {
      const o = { ...randomShape(), bandBlocks: pick<number | undefined>(undefined, randInt(1, 4), randInt(1, 40)), sinkBlocks: pick<number | undefined>(undefined, randInt(0, 3), randInt(0, 70)) };
      const m = BlockSparseMask.radial(o);
      const want = repeated(bruteForce(o.seqLenQ, o.seqLenK ?? o.seqLenQ, radialRule(o.bandBlocks ?? 1, o.sinkBlocks ?? 0), o.causal ?? false), o.batch * o.heads);
      const got = { rowPtr: Array.from(await m.rowPtr.toArray()), colIdx: Array.from(await m.colIdx.toArray()) };
      expect({ o, ...got }).toEqual({ o, ...want });
      expect(m.nnz).toBe(want.rowPtr[want.rowPtr.length - 1]);
      m.dispose();
    }
  });

  /**
   * nnz of a square mask over n whole blocks, counted by column: column c is kept by the rows
   * within `reach(c)` blocks of it (only those at or below it when causal).
   */
  function countByColumn(n: number, causal: boolean, reach: (c: number) => number): number {
    let nnz = 0;
    for (let c = 0; c < n; c++) nnz += Math.min(n - 1, c + reach(c)) - (causal ? c : Math.max(0, c - reach(c))) + 1;
    return nnz;
  }

  test('seqLenQ 2^22 (32768 blocks a side) builds with the expected nnz', () => {
    const n = 2 ** 22 / B;
    for (const causal of [false, true]) {
      const [w, s] = [randInt(0, 5), randInt(0, 4)];
      const m = BlockSparseMask.slidingWindowWithSinks({ seqLenQ: 2 ** 22, windowBlocks: w, sinkBlocks: s, causal });
      expect(m.nnz).toBe(countByColumn(n, causal, (c) => (c < s ? n : w)));
      m.dispose();
      // Radial: a block at distance d > band is kept iff 2^ring divides c, that is iff d <= band * 2^(trailing zeros of c).
      const band = randInt(1, 4);
      const tz = (c: number): number => (c === 0 ? 64 : Math.log2(c & -c));
      const r = BlockSparseMask.radial({ seqLenQ: 2 ** 22, bandBlocks: band, causal });
      expect(r.nnz).toBe(countByColumn(n, causal, (c) => band * 2 ** tz(c)));
      r.dispose();
    }
    expect(BlockSparseMask.slidingWindowWithSinks({ seqLenQ: 2 ** 22, windowBlocks: 1 }).nnz).toBe(4 * n - 4);
  });

  test('seqLenQ 2^31 - 1 (2^24 blocks a side) builds a sliding window instead of hanging', () => {
    const n = 2 ** 24;
    const m = BlockSparseMask.slidingWindowWithSinks({ seqLenQ: 2 ** 31 - 1, windowBlocks: 1 });
    // sink 0 and the band i-1..i+1: 2 + 3 + 4 (n - 3) + 3 blocks
    expect(m.nnz).toBe(4 * n - 4);
    expect(Array.from(m.blocks(0, 0, n - 1))).toEqual([0, n - 2, n - 1]);
    m.dispose();
  });

  test.each([
    ['batch * heads row offsets', () => BlockSparseMask.radial({ seqLenQ: 128, batch: 65535, heads: 65535 }), /options.batch \* options.heads \(65535 \* 65535\)/],
    ['batch * heads blocks', () => BlockSparseMask.radial({ seqLenQ: 2 ** 16, batch: 1000, heads: 1000 }), /options.batch \* options.heads \(1000 \* 1000\)/],
    ['heads at the longest sequence', () => BlockSparseMask.slidingWindowWithSinks({ seqLenQ: 2 ** 31 - 1, windowBlocks: 1, heads: 200 }), /options.batch \* options.heads \(1 \* 200\)/],
    ['2^48 blocks', () => BlockSparseMask.slidingWindowWithSinks({ seqLenQ: 2 ** 31 - 1, windowBlocks: 0, sinkBlocks: 2 ** 24 }), /options.seqLenQ \(2147483647\)/],
    ['2^48 radial blocks', () => BlockSparseMask.radial({ seqLenQ: 2 ** 31 - 1, bandBlocks: 2 ** 24 }), /options.seqLenQ \(2147483647\)/],
  ] as const)('too large a mask: %s is a RangeError naming the option', (_n, fn, msg) => expectThrows(fn, 'RangeError', msg));

  test('fromDense / fromCsr reject unknown option keys', () => {
    expectThrows(() => BlockSparseMask.fromDense([1], { numQBlocks: 1, numKBlocks: 1 }, { devic: 'cuda:0' } as never), 'TypeError', /options.devic is not a known option \(known: device\)/);
    expectThrows(() => BlockSparseMask.fromCsr([0, 1], [0], { numQBlocks: 1, numKBlocks: 1 }, { device: 'cpu', dtype: 'int32' } as never), 'TypeError', /options.dtype is not a known option/);
    expectThrows(() => BlockSparseMask.fromCsr([0, 1], [0], { numQBlocks: 1, numKBlocks: 1, batches: 2 } as never), 'TypeError', /grid.batches is not a known option/);
    expectThrows(() => BlockSparseMask.slidingWindowWithSinks({ seqLenQ: 256, windowBlocks: 1, sinks: 2 } as never), 'TypeError', /options.sinks is not a known option/);
    expect(BlockSparseMask.fromCsr([0, 1], [0], { numQBlocks: 1, numKBlocks: 1 }, { device: 'cpu' }).nnz).toBe(1);
  });
});

describe('block-sparse argument errors', () => {
  const q = Tensor.randn([1, 200, 2, 16]);
  const k = Tensor.randn([1, 300, 2, 16]);
  const ok = BlockSparseMask.fromDense([1, 1, 1, 1, 1, 1], { numQBlocks: 2, numKBlocks: 3 });
  const disposed = BlockSparseMask.fromDense([1, 1, 1, 1, 1, 1], { numQBlocks: 2, numKBlocks: 3 });
  disposed.dispose();
  test.each([
    ['not a mask', () => attention(q, k, k, { blockMask: {} as never }), 'TypeError', /options.blockMask must be a BlockSparseMask/],
    ['disposed', () => attention(q, k, k, { blockMask: disposed }), 'TypeError', /options.blockMask has been disposed/],
    ['grid size', () => attention(q, k, k, { blockMask: BlockSparseMask.fromDense([1, 1], { numQBlocks: 2, numKBlocks: 1 }) }), 'RangeError', /need 2 x 3/],
    ['heads', () => attention(q, k, k, { blockMask: BlockSparseMask.fromDense(new Array(18).fill(1), { heads: 3, numQBlocks: 2, numKBlocks: 3 }) }), 'RangeError', /1 or q's heads \(2\)/],
    ['batch', () => attention(q, k, k, { blockMask: BlockSparseMask.fromDense(new Array(12).fill(1), { batch: 2, numQBlocks: 2, numKBlocks: 3 }) }), 'RangeError', /1 or q's batch \(1\)/],
    ['fromDense length', () => BlockSparseMask.fromDense([1, 0, 1], { numQBlocks: 2, numKBlocks: 2 }), 'RangeError', /needs 4/],
    ['fromDense grid key', () => BlockSparseMask.fromDense([1], { numQBlocks: 1, numKBlocks: 1, rows: 1 } as never), 'TypeError', /grid.rows is not a known option/],
    ['fromCsr unsorted', () => BlockSparseMask.fromCsr([0, 2], [1, 0], { numQBlocks: 1, numKBlocks: 2 }), 'RangeError', /strictly ascending/],
    ['fromCsr range', () => BlockSparseMask.fromCsr([0, 1], [2], { numQBlocks: 1, numKBlocks: 2 }), 'RangeError', /colIdx\[0\]/],
    ['fromCsr end', () => BlockSparseMask.fromCsr([0, 1], [0, 1], { numQBlocks: 1, numKBlocks: 2 }), 'RangeError', /must end at colIdx.length/],
    ['window blocks', () => BlockSparseMask.slidingWindowWithSinks({ seqLenQ: 10, windowBlocks: -1 }), 'RangeError', /options.windowBlocks/],
    ['builder key', () => BlockSparseMask.radial({ seqLenQ: 10, band: 2 } as never), 'TypeError', /options.band is not a known option/],
    ['builder device', () => BlockSparseMask.radial({ seqLenQ: 10, device: 'tpu' as never }), 'RangeError', /options.device/],
  ] as const)('%s', (_n, fn, cls, msg) => expectThrows(fn, cls, msg));

  test('ok mask works', async () => {
    const { out } = attention(q, k, k, { blockMask: ok });
    expect((await out.toArray()).every(Number.isFinite)).toBe(true);
  });
});

describe('CPU top-k decode over the paged cache', () => {
  test('k >= every page count is exactly the full decode; in a mixed batch, for the short sequences', async () => {
    const shadow = makeTopKCache('cpu', 'f32', { pageSize: 8 });
    const seqs = [shadow.add(), shadow.add(), shadow.add()];
    await shadow.append(seqs, 0, [5, 40, 97]); // 1, 5 and 13 pages
    expect(await topKMatchesFull(shadow.cache, seqs, 0, 4, 13)).toBe(true);
    expect(await topKMatchesFull(shadow.cache, seqs, 0, 4, 1000)).toBe(true);
    expect(await topKMatchesFull(shadow.cache, seqs, 0, 4, 5, [0, 1])).toBe(true);
    // and not for the long one (it reads 5 of its 13 pages)
    expect(await topKMatchesFull(shadow.cache, seqs, 0, 4, 5, [2])).toBe(false);
  });

  for (const dtype of ['f32', 'bf16'] as const) {
    test(`${dtype}: top-k equals float64 attention over exactly the pages the rule picks (GQA 4:1, two layers)`, async () => {
      const shadow = makeTopKCache('cpu', dtype, { pageSize: 8, kvHeads: 2, headDim: 32 });
      const seqs = [shadow.add(), shadow.add(), shadow.add()];
      // Uneven appends across page boundaries, both layers: the summaries fold new slots in.
      await shadow.append(seqs, 0, [3, 50, 77]);
      await shadow.append(seqs, 0, [20, 1, 60]);
      await shadow.append(seqs, 1, [130, 9, 17]);
      for (const k of [2, 3, 6]) {
        const { err, pages } = await checkTopK(shadow, seqs, 0, 8, k);
        expect(err).toBeLessThan(TOL[dtype]);
        expect(pages[2].length).toBe(k);
      }
      expect((await checkTopK(shadow, seqs, 1, 8, 4, { softcap: 5, scale: 0.3 })).err).toBeLessThan(TOL[dtype]);
      expect((await checkTopK(shadow, seqs, 1, 8, 7, { causal: false })).err).toBeLessThan(TOL[dtype]);
    });
  }

  test('summaries stay right across fork / copy-on-write', async () => {
    const shadow = makeTopKCache('cpu', 'f32', { pageSize: 8, layers: 2 });
    const a = shadow.add();
    await shadow.append([a], 0, [60]);
    await shadow.append([a], 1, [44]);
    const b = shadow.fork(a);
    await shadow.append([a, b], 0, [3, 30]); // both write into the shared partial page: copied first
    await shadow.append([b], 1, [7]);
    for (const layer of [0, 1]) expect((await checkTopK(shadow, [a, b], layer, 4, 3)).err).toBeLessThan(TOL.f32);
    shadow.free(a);
    expect((await checkTopK(shadow, [b], 0, 4, 4)).err).toBeLessThan(TOL.f32);
  });

  test('a token budget keeps floor(tokens / pageSize) pages, at least 2', async () => {
    const shadow = makeTopKCache('cpu', 'f32', { pageSize: 8 });
    const s = shadow.add();
    await shadow.append([s], 0, [100]);
    const q = Tensor.randn([1, 4, 32]);
    const a = await pagedAttention(q, shadow.cache, 0, [s], { topK: { tokens: 39 } }).out.toArray();
    const b = await pagedAttention(q, shadow.cache, 0, [s], { topK: { pages: 4 } }).out.toArray();
    const c = await pagedAttention(q, shadow.cache, 0, [s], { topK: { tokens: 1 } }).out.toArray();
    const d = await pagedAttention(q, shadow.cache, 0, [s], { topK: { pages: 2 } }).out.toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(c)).toEqual(Array.from(d));
  });

  describe('errors', () => {
    const plain = makeCache('cpu', 'f32');
    const p = plain.addSequence();
    plain.append(p, 0, Tensor.randn([20, 2, 32]), Tensor.randn([20, 2, 32]));
    const shadow = makeTopKCache('cpu', 'f32');
    const s = shadow.cache.addSequence();
    shadow.cache.append(s, 0, Tensor.randn([20, 2, 32]), Tensor.randn([20, 2, 32]));
    const q = Tensor.randn([1, 4, 32]);
    test.each([
      ['no summaries', () => pagedAttention(q, plain, 0, [p], { topK: { pages: 2 } }), 'RangeError', /pageSummaries: true/],
      ['pages < 2', () => pagedAttention(q, shadow.cache, 0, [s], { topK: { pages: 1 } }), 'RangeError', /options.topK.pages/],
      ['both keys', () => pagedAttention(q, shadow.cache, 0, [s], { topK: { pages: 2, tokens: 3 } as never }), 'TypeError', /\{ pages \} or \{ tokens \}/],
      ['not an object', () => pagedAttention(q, shadow.cache, 0, [s], { topK: 4 as never }), 'TypeError', /options.topK must be an object/],
      ['prefill', () => pagedAttention(Tensor.randn([2, 4, 32]), shadow.cache, 0, [s], { topK: { pages: 2 }, queryCounts: [2] }), 'RangeError', /decode only/],
      ['window', () => pagedAttention(q, shadow.cache, 0, [s], { topK: { pages: 2 }, window: [8, 0] }), 'RangeError', /window or options.alibiSlopes/],
      ['alibi', () => pagedAttention(q, shadow.cache, 0, [s], { topK: { pages: 2 }, alibiSlopes: [1, 1, 1, 1] }), 'RangeError', /window or options.alibiSlopes/],
      ['summaries option', () => new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 8, capacityPages: 4, pageSummaries: 1 as never }), 'TypeError', /options.pageSummaries must be a boolean/],
    ] as const)('%s', (_n, fn, cls, msg) => expectThrows(fn, cls, msg));
  });
});

describe('CPU top-k decode with label-channel summaries (pageSummaryChannels)', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    test(`${dtype}: channels chosen by the first append's mean |K|; the picked pages follow the rule over them`, async () => {
      const shadow = makeTopKCache('cpu', dtype, { pageSize: 8, kvHeads: 2, headDim: 64, channels: 16, layers: 2 });
      const seqs = [shadow.add(), shadow.add(), shadow.add()];
      await shadow.append(seqs, 0, [40, 230, 300]); // the first append of layer 0 picks its channels
      const first = seqs.flatMap((sq) => shadow.k.get(sq)![0].map((r) => [...r]));
      await shadow.append(seqs, 0, [17, 1, 60]);
      await shadow.append(seqs, 1, [90, 9, 170]);
      expect(await shadow.cache.summaryChannelIndices(0)).toEqual(expectedChannels(first, 2, 64, 16));
      const layer1 = await shadow.cache.summaryChannelIndices(1);
      expect(layer1).toEqual(expectedChannels(seqs.flatMap((sq) => shadow.k.get(sq)![1]), 2, 64, 16));
      expect(layer1).not.toEqual(await shadow.cache.summaryChannelIndices(0));
      for (const k of [2, 4, 9]) {
        const { err, pages } = await checkTopK(shadow, seqs, 0, 8, k);
        expect(err).toBeLessThan(TOL[dtype]);
        expect(pages[2].length).toBe(k);
      }
      expect((await checkTopK(shadow, seqs, 1, 4, 5, { softcap: 5 })).err).toBeLessThan(TOL[dtype]);
    });
  }

  test('k >= every page count is exactly the full decode (8 channels)', async () => {
    const shadow = makeTopKCache('cpu', 'bf16', { pageSize: 16, headDim: 32, channels: 8, layers: 1 });
    const seqs = [shadow.add(), shadow.add()];
    await shadow.append(seqs, 0, [100, 333]);
    expect(await topKMatchesFull(shadow.cache, seqs, 0, 4, 21)).toBe(true);
    expect(await topKMatchesFull(shadow.cache, seqs, 0, 4, 7, [0])).toBe(true);
  });

  test('given channel indices are used as given (sorted), fork / copy-on-write keep the summaries', async () => {
    const idx = [[[31, 0, 5, 7, 9, 11, 2, 30], [1, 2, 3, 4, 5, 6, 7, 8]], [[8, 9, 10, 11, 12, 13, 14, 15], [16, 17, 18, 19, 20, 21, 22, 23]]];
    const shadow = makeTopKCache('cpu', 'f32', { pageSize: 8, headDim: 32, channelIndices: idx });
    expect(shadow.cache.pageSummaryChannels).toBe(8);
    expect(await shadow.cache.summaryChannelIndices(0)).toEqual([[0, 2, 5, 7, 9, 11, 30, 31], [1, 2, 3, 4, 5, 6, 7, 8]]);
    const a = shadow.add();
    await shadow.append([a], 0, [70]);
    await shadow.append([a], 1, [50]);
    const b = shadow.fork(a);
    await shadow.append([a, b], 0, [3, 30]);
    expect(await shadow.cache.summaryChannelIndices(1)).toEqual(idx[1]);
    for (const layer of [0, 1]) expect((await checkTopK(shadow, [a, b], layer, 4, 4)).err).toBeLessThan(TOL.f32);
  });

  describe('errors', () => {
    const base = { layers: 1, kvHeads: 2, headDim: 32, capacityPages: 4, device: 'cpu' as const };
    const idx = (r: number, o: { dup?: boolean; bad?: number } = {}) =>
      [Array.from({ length: 2 }, () => Array.from({ length: r }, (_, j) => (o.dup && j === 1 ? 0 : o.bad !== undefined && j === 2 ? o.bad : j)))];
    test.each([
      ['count', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannels: 12 as never }), 'RangeError', /options.pageSummaryChannels must be 8, 16, 32 or 'all', got 12/],
      ['count type', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannels: 'x' as never }), 'TypeError', /options.pageSummaryChannels must be/],
      ['count > headDim', () => new PagedKVCache({ ...base, headDim: 8, pageSummaries: true, pageSummaryChannels: 16 }), 'RangeError', /options.pageSummaryChannels \(16\) exceeds headDim \(8\)/],
      ['no summaries', () => new PagedKVCache({ ...base, pageSummaryChannels: 8 }), 'RangeError', /options.pageSummaryChannels needs pageSummaries: true/],
      ['indices, no summaries', () => new PagedKVCache({ ...base, pageSummaryChannelIndices: idx(8) }), 'RangeError', /options.pageSummaryChannelIndices needs pageSummaries: true/],
      ['indices type', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannelIndices: 3 as never }), 'TypeError', /options.pageSummaryChannelIndices must be an array/],
      ['indices layers', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannelIndices: [...idx(8), ...idx(8)] }), 'RangeError', /one entry per layer \(1\)/],
      ['indices heads', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannelIndices: [idx(8)[0].slice(1)] }), 'RangeError', /\[0\] must have one entry per kv head \(2\)/],
      ['indices count', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannelIndices: idx(5) }), 'RangeError', /\[0\]\[0\] lists 5 channels; 8, 16 or 32/],
      ['indices vs count', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannels: 16, pageSummaryChannelIndices: idx(8) }), 'RangeError', /lists 8 channels but options.pageSummaryChannels is 16/],
      ['indices with all', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannels: 'all', pageSummaryChannelIndices: idx(8) }), 'RangeError', /cannot be combined with pageSummaryChannels: 'all'/],
      ['index range', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannelIndices: idx(8, { bad: 32 }) }), 'RangeError', /options.pageSummaryChannelIndices\[0\]\[0\]\[2\] must be an integer in \[0, 31\]/],
      ['index type', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannelIndices: [[[0, 1, 'a', 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6, 7]]] as never }),
        'TypeError', /options.pageSummaryChannelIndices\[0\]\[0\]\[2\] must be a number/],
      ['duplicate', () => new PagedKVCache({ ...base, pageSummaries: true, pageSummaryChannelIndices: idx(8, { dup: true }) }), 'RangeError', /\[0\]\[0\] lists channel 0 twice/],
    ] as const)('%s', (_n, fn, cls, msg) => expectThrows(fn, cls, msg));
  });
});
