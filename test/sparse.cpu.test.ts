import { attention, BlockSparseMask, DType, Tensor } from '../lib';
import { expectThrows } from './helpers/throws';
import { radialGrid, runSparseCase, slidingGrid, sparseCases } from './helpers/sparse';

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
