/**
 * Paged prefill on CUDA: the flash forward kernel reading K/V through the block table (chosen for
 * prefills of >= 64 query rows per sequence on average, and for every call with a block mask).
 *
 * Long cases compare against float64 on a sample of rows (16 per sequence, evenly spread, first and
 * last included: the float64 reference over every row of 3900 queries x 4700 keys would take minutes
 * in JS) and compare every row against dense attention() on the gathered K/V, an independent path
 * through contiguous tensors; the output starts as NaN, so an unwritten row fails.
 */
import { BlockSparseMask, cuda, DType, PagedAttentionOptions, pagedAttention, Tensor } from '../lib';
import { native } from '../lib/native';
import { TOLERANCE } from './helpers/cases';
import { checkAccounting, makeCache, ShadowCache } from './helpers/paged';
import { checkMasked, MaskGrid, pagedGridShape, randomPagedGrid } from './helpers/paged_sparse';
import { referenceAttention, relL2 } from './helpers/reference';
import { expectThrows } from './helpers/throws';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;
const device = 'cuda:0';
const HEADS = 8;
const KV_HEADS = 2;

/** A shadowed one-layer cache holding sequences of `lens` tokens, appended in two uneven batched calls. */
async function filled(dtype: DType, headDim: number, pageSize: number, lens: number[]): Promise<{ shadow: ShadowCache; seqs: number[] }> {
  const pages = lens.reduce((a, l) => a + Math.ceil(l / pageSize), 0);
  const shadow = new ShadowCache(makeCache(device, dtype, { headDim, pageSize, kvHeads: KV_HEADS, layers: 1, capacityPages: pages + 16, maxSequences: 8 }));
  const seqs = lens.map(() => shadow.add());
  const first = lens.map((l) => Math.floor(l * 0.4));
  await shadow.append(seqs, 0, first);
  await shadow.append(seqs, 0, lens.map((l, i) => l - first[i]));
  return { shadow, seqs };
}

// Per head dim, a different mix of score options (causal is the default).
const OPTIONS: Record<number, PagedAttentionOptions> = {
  64: { window: [1500, -1] },
  128: {},
  256: { causal: false, softcap: 30 },
};

describeCuda('CUDA paged prefill (flash kernel through the block table) matches float64 and dense attention()', () => {
  // 1000 and 2900 new query rows over 2300 and 4700 cached keys.
  const lens = [2300, 4700];
  const counts = [1000, 2900];
  for (const dtype of ['bf16', 'f16'] as DType[])
    for (const headDim of [64, 128, 256])
      for (const pageSize of [16, 64]) {
        test(`${dtype} d${headDim} page ${pageSize}: long prefill, GQA 4:1, dense and with a random per-head mask`, async () => {
          const { shadow, seqs } = await filled(dtype, headDim, pageSize, lens);
          const options = { ...OPTIONS[headDim], queryCounts: counts };
          const tol = TOLERANCE[dtype];
          for (const grid of [undefined, randomPagedGrid(counts, lens, 1, HEADS, 0.4)]) {
            const r = await checkMasked(shadow, seqs, 0, HEADS, { options, grid, sampleRows: 16, dense: true });
            expect(r.allWritten).toBe(true);
            expect(r.emptyRowsOk).toBe(true);
            expect(r.errOut).toBeLessThan(tol);
            expect(r.errLse).toBeLessThan(1e-4);
            // Two kernels, both rounding to dtype: far below the float64 tolerance unless a row is wrong.
            expect(r.errDense).toBeLessThan(tol);
            expect(r.errDenseLse).toBeLessThan(1e-4);
          }
          // A decode step after the prefill still runs (on the decode kernel) and matches.
          expect(await shadow.check(seqs, 0, HEADS, OPTIONS[headDim])).toBeLessThan(tol);
          checkAccounting(shadow.cache);
          shadow.cache.dispose();
        });
      }

  test('bf16 d128 page 16: mixed batch (0, 1 and long query runs), per-sequence mask with empty query blocks, ALiBi', async () => {
    const lens2 = [1800, 40, 700, 3000];
    const counts2 = [1500, 0, 1, 700];
    const { shadow, seqs } = await filled('bf16', 128, 16, lens2);
    const grid = randomPagedGrid(counts2, lens2, 4, 1, 0.5);
    // Sequence 0's query block 3 lists nothing: its rows see no key (output 0, lse -inf).
    for (let c = 0; c < grid.numKBlocks; c++) grid.cells[3 * grid.numKBlocks + c] = 0;
    const options = { queryCounts: counts2, alibiSlopes: Array.from({ length: HEADS }, (_, h) => 0.05 / (h + 1)) };
    const r = await checkMasked(shadow, seqs, 0, HEADS, { options, grid, sampleRows: 24, dense: true });
    expect(r.allWritten && r.emptyRowsOk).toBe(true);
    expect(r.errOut).toBeLessThan(1e-2);
    expect(r.errDense).toBeLessThan(1e-2);
    expect(r.errDenseLse).toBeLessThan(1e-4);
    shadow.cache.dispose();
  });

  test('f16 d64 page 1: a tile spans 64-128 pages; decode with a mask runs the prefill kernel', async () => {
    const lens2 = [1300, 900];
    const { shadow, seqs } = await filled('f16', 64, 1, lens2);
    const counts2 = [300, 500];
    const r = await checkMasked(shadow, seqs, 0, HEADS, { options: { queryCounts: counts2 }, grid: randomPagedGrid(counts2, lens2, 2, HEADS, 0.5), dense: true });
    expect(r.allWritten && r.emptyRowsOk).toBe(true);
    expect(r.errOut).toBeLessThan(3e-3);
    expect(r.errDense).toBeLessThan(3e-3);
    const d = await checkMasked(shadow, seqs, 0, HEADS, { grid: randomPagedGrid([1, 1], lens2, 2, 1, 0.5) });
    expect(d.allWritten && d.emptyRowsOk).toBe(true);
    expect(d.errOut).toBeLessThan(3e-3);
    shadow.cache.dispose();
  });

  test.each([64, 128, 256])('bf16 d%i: a mask listing every block gives the unmasked result bit for bit (one kernel)', async (headDim) => {
    const lens2 = [900, 1400];
    const counts2 = [700, 300];
    const { shadow, seqs } = await filled('bf16', headDim, 16, lens2);
    const { numQBlocks, numKBlocks } = pagedGridShape(counts2, lens2);
    const full = BlockSparseMask.fromDense(new Array(numQBlocks * numKBlocks).fill(1), { numQBlocks, numKBlocks }, { device });
    const q = Tensor.randn([1000, HEADS, headDim], { dtype: 'bf16', device });
    for (const options of [{}, { causal: false }, { window: [300, 100] as [number, number] }]) {
      const a = pagedAttention(q, shadow.cache, 0, seqs, { ...options, queryCounts: counts2 });
      const b = pagedAttention(q, shadow.cache, 0, seqs, { ...options, queryCounts: counts2, blockMask: full });
      const [ao, bo, al, bl] = await Promise.all([a.out.toArray(), b.out.toArray(), a.lse!.toArray(), b.lse!.toArray()]);
      // Compared as one boolean: jest's diff of ~1e6 unequal elements would run for minutes.
      expect(ao.every((x, i) => Object.is(x, bo[i]))).toBe(true);
      expect(al.every((x, i) => Object.is(x, bl[i]))).toBe(true);
      for (const t of [a.out, a.lse!, b.out, b.lse!]) t.dispose();
    }
    q.dispose();
    full.dispose();
    shadow.cache.dispose();
  });

  test('around the kernel threshold (63 and 64 rows per sequence) and with each kernel forced, bf16 d128 page 16', async () => {
    const lens2 = [1500, 700];
    const { shadow, seqs } = await filled('bf16', 128, 16, lens2);
    for (const c of [[63, 63], [64, 64], [100, 28]]) expect(await shadow.check(seqs, 0, HEADS, { queryCounts: c })).toBeLessThan(1e-2);
    // The binding's test hook (pagedKernel: 1 decode kernel, 2 prefill kernel) on one prefill:
    // both kernels against float64.
    const counts2 = [200, 90];
    const total = 290;
    const q = Tensor.randn([total, HEADS, 128], { dtype: 'bf16', device });
    const qh = await q.toArray();
    const { rows, seqLens } = shadow.cache.batchInfo(seqs, 0, 'seqs');
    for (const pagedKernel of [1, 2]) {
      const out = Tensor.full([total, HEADS, 128], NaN, { dtype: 'bf16', device });
      native.pagedAttention(q, shadow.cache.pool, 0, shadow.cache.blockTable, out, null, {
        scale: 1 / Math.sqrt(128), softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows, seqLens, numSplits: 0,
        cuSeqlensQ: Int32Array.from([0, 200, 290]), pagedKernel,
      });
      const oh = await out.toArray();
      out.dispose();
      const ref: number[] = [];
      let row = 0;
      seqs.forEach((s, b) => {
        const r = referenceAttention({
          q: Float64Array.from(qh.subarray(row * HEADS * 128, (row + counts2[b]) * HEADS * 128)),
          k: Float64Array.from(shadow.k.get(s)![0].flat()), v: Float64Array.from(shadow.v.get(s)![0].flat()),
          lenQ: counts2[b], lenK: lens2[b],
        }, { headsQ: HEADS, headsKv: KV_HEADS, dim: 128, scale: 1 / Math.sqrt(128), causal: true });
        for (const x of r.out) ref.push(x);
        row += counts2[b];
      });
      expect(relL2(oh, ref)).toBeLessThan(1e-2);
    }
    q.dispose();
    shadow.cache.dispose();
  });

  test('errors: a mask on another device', () => {
    const cache = makeCache(device, 'bf16', { headDim: 64, pageSize: 16 });
    const s = cache.addSequence();
    cache.append(s, 0, Tensor.randn([200, 2, 64], { dtype: 'bf16', device }), Tensor.randn([200, 2, 64], { dtype: 'bf16', device }));
    const q = Tensor.randn([150, 4, 64], { dtype: 'bf16', device });
    const onCpu = BlockSparseMask.fromDense([1, 1, 1, 1], { numQBlocks: 2, numKBlocks: 2 });
    expectThrows(() => pagedAttention(q, cache, 0, [s], { queryCounts: [150], blockMask: onCpu }), 'RangeError', /options.blockMask is on cpu but q is on cuda:0/);
    const grid: MaskGrid = { cells: new Uint8Array(4).fill(1), batch: 1, heads: 1, numQBlocks: 2, numKBlocks: 2 };
    const onGpu = BlockSparseMask.fromDense(grid.cells, { numQBlocks: 2, numKBlocks: 2 }, { device });
    expect(() => pagedAttention(q, cache, 0, [s], { queryCounts: [150], blockMask: onGpu })).not.toThrow();
    for (const t of [q, onCpu, onGpu, cache]) t.dispose();
  });
});
