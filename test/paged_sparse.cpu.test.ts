import { BlockSparseMask, DType, PagedKVCache, pagedAttention, Tensor } from '../lib';
import { makeCache, ShadowCache } from './helpers/paged';
import { checkMasked, MaskGrid, pagedGridShape, randomPagedGrid } from './helpers/paged_sparse';
import { radialGrid, slidingGrid } from './helpers/sparse';
import { expectThrows } from './helpers/throws';
import { makeTopKCache } from './helpers/topk';

const TOL = { f32: 2e-5, bf16: 1e-2 } as const;

/** A shadowed cache holding sequences of `lens` tokens in layer 0, appended in two uneven batched calls. */
async function filled(dtype: DType, pageSize: number, lens: number[], o: { kvHeads?: number; headDim?: number } = {}): Promise<{ shadow: ShadowCache; seqs: number[] }> {
  const pages = lens.reduce((a, l) => a + Math.ceil(l / pageSize), 0);
  const shadow = new ShadowCache(makeCache('cpu', dtype, {
    pageSize, kvHeads: o.kvHeads ?? 2, headDim: o.headDim ?? 32, layers: 1, capacityPages: pages + 8, maxSequences: lens.length,
  }));
  const seqs = lens.map(() => shadow.add());
  const first = lens.map((l) => Math.floor(l / 3));
  await shadow.append(seqs, 0, first);
  await shadow.append(seqs, 0, lens.map((l, i) => l - first[i]));
  return { shadow, seqs };
}

describe('CPU paged attention with a block mask equals dense attention on the gathered KV with the explicit mask (float64)', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const pageSize of [1, 16, 64]) {
      test(`${dtype} page ${pageSize}: varlen prefill, GQA 4:1, causal, random per-sequence and per-head mask`, async () => {
        // Query runs of 300 / 140 / 0 / 1 rows over 700 / 260 / 90 / 129 cached keys (k > q throughout).
        const lens = [700, 260, 90, 129];
        const counts = [300, 140, 0, 1];
        const { shadow, seqs } = await filled(dtype, pageSize, lens);
        const r = await checkMasked(shadow, seqs, 0, 8, { options: { queryCounts: counts }, grid: randomPagedGrid(counts, lens, 4, 8, 0.5) });
        expect(r.allWritten).toBe(true);
        expect(r.emptyRowsOk).toBe(true);
        expect(r.errOut).toBeLessThan(TOL[dtype]);
        expect(r.errLse).toBeLessThan(1e-5);
      });
    }
  }

  test.each([
    ['non-causal, broadcast mask', { causal: false }],
    ['window + softcap', { window: [150, 40] as [number, number], softcap: 4 }],
    ['ALiBi + scale', { alibiSlopes: [0.02, 0.01, 0.004, 0.001], scale: 0.8 }],
    ['causal + left window', { window: [200, -1] as [number, number] }],
  ])('f32 page 16: %s', async (_name, options) => {
    const lens = [650, 300];
    const counts = [200, 300];
    const { shadow, seqs } = await filled('f32', 16, lens, { kvHeads: 1 });
    const r = await checkMasked(shadow, seqs, 0, 4, { options: { ...options, queryCounts: counts }, grid: randomPagedGrid(counts, lens, 1, 1, 0.6) });
    expect(r.allWritten && r.emptyRowsOk).toBe(true);
    expect(r.errOut).toBeLessThan(TOL.f32);
    expect(r.errLse).toBeLessThan(1e-5);
  });

  test('decode (no queryCounts): each query reads only its sequence\'s listed key blocks', async () => {
    const lens = [600, 1, 300];
    const { shadow, seqs } = await filled('f32', 16, lens);
    const grid = randomPagedGrid([1, 1, 1], lens, 3, 1, 0.5);
    // 1 x 5 blocks per sequence: sequence 0 skips its first block, sequence 1 keeps its only one.
    grid.cells[0] = 0;
    grid.cells[5] = 1;
    const r = await checkMasked(shadow, seqs, 0, 4, { grid });
    expect(r.allWritten && r.emptyRowsOk).toBe(true);
    expect(r.errOut).toBeLessThan(TOL.f32);
  });

  test('query blocks that list nothing give output 0 and lse -inf', async () => {
    const lens = [400];
    const counts = [260];
    const { shadow, seqs } = await filled('f32', 16, lens);
    const { numQBlocks, numKBlocks } = pagedGridShape(counts, lens);
    // 3 query blocks x 4 key blocks: blocks 1 and 2 list nothing; block 0 lists key block 3, above
    // the diagonal of most of its rows (positions 140-267), which therefore see only blocks 0 and 1.
    const cells = Uint8Array.from([1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    const grid: MaskGrid = { cells, batch: 1, heads: 1, numQBlocks, numKBlocks };
    const r = await checkMasked(shadow, seqs, 0, 2, { options: { queryCounts: counts }, grid });
    expect(r.allWritten && r.emptyRowsOk).toBe(true);
    expect(r.errOut).toBeLessThan(TOL.f32);
  });

  test('the mask builders fit a paged prefill as they are (bottom-right aligned like the cache)', async () => {
    const lens = [900];
    const counts = [500];
    const { shadow, seqs } = await filled('f32', 64, lens);
    const shape = pagedGridShape(counts, lens);
    for (const [mask, cells] of [
      [BlockSparseMask.slidingWindowWithSinks({ seqLenQ: 500, seqLenK: 900, windowBlocks: 1, causal: true }), slidingGrid(500, 900, 1, 1, true)],
      [BlockSparseMask.radial({ seqLenQ: 500, seqLenK: 900, bandBlocks: 1, causal: true }), radialGrid(500, 900, 1, 0, true)],
    ] as const) {
      const r = await checkMasked(shadow, seqs, 0, 4, { options: { queryCounts: counts }, mask, grid: { cells, batch: 1, heads: 1, ...shape } });
      expect(r.allWritten && r.emptyRowsOk).toBe(true);
      expect(r.errOut).toBeLessThan(TOL.f32);
      mask.dispose();
    }
  });

  test('a mask listing every block gives exactly the unmasked result (prefill and decode, several options)', async () => {
    const lens = [333, 520];
    const { shadow, seqs } = await filled('bf16', 16, lens);
    for (const [counts, options] of [
      [[150, 300], {}],
      [[150, 300], { causal: false, softcap: 5 }],
      [[1, 260], { window: [100, 20] as [number, number] }],
      [undefined, {}],
    ] as const) {
      const c = counts ?? [1, 1];
      const { numQBlocks, numKBlocks } = pagedGridShape(c, lens);
      const full = BlockSparseMask.fromDense(new Array(numQBlocks * numKBlocks).fill(1), { numQBlocks, numKBlocks });
      const q = Tensor.randn([c[0] + c[1], 8, 32], { dtype: 'bf16' });
      const queryCounts = counts ? [...counts] : undefined;
      const a = pagedAttention(q, shadow.cache, 0, seqs, { ...options, queryCounts });
      const b = pagedAttention(q, shadow.cache, 0, seqs, { ...options, queryCounts, blockMask: full });
      const [ao, bo, al, bl] = await Promise.all([a.out.toArray(), b.out.toArray(), a.lse!.toArray(), b.lse!.toArray()]);
      expect(ao.every((x, i) => Object.is(x, bo[i]))).toBe(true);
      expect(al.every((x, i) => Object.is(x, bl[i]))).toBe(true);
      full.dispose();
    }
  });
});

describe('paged blockMask argument errors', () => {
  const cache = makeCache('cpu', 'f32', { pageSize: 16 });
  const a = cache.addSequence();
  const b = cache.addSequence();
  cache.append([a, b], 0, Tensor.randn([500, 2, 32]), Tensor.randn([500, 2, 32]), [300, 200]);
  const q = Tensor.randn([250, 4, 32]);
  const queryCounts = [200, 50];
  // Needs ceil(200 / 128) x ceil(300 / 128) = 2 x 3 blocks.
  const ok = BlockSparseMask.fromDense(new Array(6).fill(1), { numQBlocks: 2, numKBlocks: 3 });
  const disposed = BlockSparseMask.fromDense(new Array(6).fill(1), { numQBlocks: 2, numKBlocks: 3 });
  disposed.dispose();
  const quant = new PagedKVCache({ layers: 1, kvHeads: 2, headDim: 32, capacityPages: 8, pageSize: 16, dtype: 'int8', device: 'cpu' });
  const qs = quant.addSequence();
  quant.append(qs, 0, Tensor.randn([20, 2, 32]), Tensor.randn([20, 2, 32]));
  const topk = makeTopKCache('cpu', 'f32');
  const ts = topk.cache.addSequence();
  topk.cache.append(ts, 0, Tensor.randn([20, 2, 32]), Tensor.randn([20, 2, 32]));
  const one = BlockSparseMask.fromDense([1], { numQBlocks: 1, numKBlocks: 1 });
  test.each([
    ['not a mask', () => pagedAttention(q, cache, 0, [a, b], { queryCounts, blockMask: {} as never }), 'TypeError', /options.blockMask must be a BlockSparseMask/],
    ['disposed', () => pagedAttention(q, cache, 0, [a, b], { queryCounts, blockMask: disposed }), 'TypeError', /options.blockMask has been disposed/],
    ['query blocks', () => pagedAttention(q, cache, 0, [a, b], { queryCounts, blockMask: BlockSparseMask.fromDense([1, 1, 1], { numQBlocks: 1, numKBlocks: 3 }) }),
      'RangeError', /options.blockMask is 1 x 3 blocks but 200 query rows .* x 300 cached keys .* need 2 x 3/],
    ['key blocks', () => pagedAttention(q, cache, 0, [a, b], { queryCounts, blockMask: BlockSparseMask.fromDense([1, 1, 1, 1], { numQBlocks: 2, numKBlocks: 2 }) }),
      'RangeError', /need 2 x 3/],
    ['decode grid', () => pagedAttention(Tensor.randn([2, 4, 32]), cache, 0, [a, b], { blockMask: ok }), 'RangeError', /one query per sequence x 300 cached keys .* need 1 x 3/],
    ['batch', () => pagedAttention(q, cache, 0, [a, b], { queryCounts, blockMask: BlockSparseMask.fromDense(new Array(18).fill(1), { batch: 3, numQBlocks: 2, numKBlocks: 3 }) }),
      'RangeError', /batch 3; it must be 1 or the number of sequences \(2\)/],
    ['heads', () => pagedAttention(q, cache, 0, [a, b], { queryCounts, blockMask: BlockSparseMask.fromDense(new Array(12).fill(1), { heads: 2, numQBlocks: 2, numKBlocks: 3 }) }),
      'RangeError', /2 heads; it must be 1 or q's heads \(4\)/],
    ['quantized cache', () => pagedAttention(Tensor.randn([1, 4, 32]), quant, 0, [qs], { blockMask: one }), 'RangeError', /options.blockMask needs a 16\/32-bit cache, not dtype int8/],
    ['with topK', () => pagedAttention(Tensor.randn([1, 4, 32]), topk.cache, 0, [ts], { blockMask: one, topK: { pages: 2 } }), 'RangeError', /options.blockMask cannot be combined with options.topK/],
  ] as const)('%s', (_n, fn, cls, msg) => expectThrows(fn, cls, msg));

  test('the right grid works', async () => {
    const { out } = pagedAttention(q, cache, 0, [a, b], { queryCounts, blockMask: ok });
    expect((await out.toArray()).every(Number.isFinite)).toBe(true);
  });
});
