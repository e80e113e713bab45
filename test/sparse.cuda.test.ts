import { attention, BlockSparseMask, cuda, DType, Tensor } from '../lib';
import { radialGrid, runSparseCase, slidingGrid, SparseCase, sparseCases } from './helpers/sparse';
import { checkTopK, makeTopKCache, topKMatchesFull } from './helpers/topk';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;
const device = 'cuda:0';

describeCuda('CUDA block-sparse attention equals dense attention with the explicit mask (float64)', () => {
  const nb = (l: number): number => Math.ceil(l / 128);
  const long = (lq: number, lk: number, dim: number, grid: Uint8Array, options: SparseCase['options'] = {}): SparseCase => ({
    batch: 1, lenQ: [lq], lenK: [lk], headsQ: 2, headsKv: 1, dim, grid, maskBatch: 1, maskHeads: 1, numQBlocks: nb(lq), numKBlocks: nb(lk), options,
  });
  const extra: Array<[string, SparseCase]> = [
    ['d128 radial causal L2100', long(2100, 2100, 128, radialGrid(2100, 2100, 1, 1, true), { causal: true })],
    ['d128 sliding window + sinks L3000', long(3000, 3000, 128, slidingGrid(3000, 3000, 2, 1, true), { causal: true })],
    ['d256 sliding window q 700 < k 1500', long(700, 1500, 256, slidingGrid(700, 1500, 1, 1, false), { window: [300, 50] })],
    ['d64 radial bidirectional L1800', long(1800, 1800, 64, radialGrid(1800, 1800, 2, 0, false), { softcap: 8 })],
  ];
  for (const dtype of ['bf16', 'f16'] as DType[]) {
    describe(dtype, () => {
      test.each([...[32, 64, 96, 128, 256].flatMap((d) => sparseCases(d)), ...extra])('%s', async (_name, c) => {
        const r = await runSparseCase(c, dtype, device);
        expect(r.errOut).toBeLessThan(r.tolerance);
        expect(r.errLse).toBeLessThan(1e-4);
      });
    });
  }

  // On Hopper the dense d256 call runs the sm_90a kernel (80-key blocks), which cannot walk 128-key
  // mask blocks, so a masked d256 call runs the sm_80 kernel: equal up to accumulation order only.
  const sameKernel = (dim: number): boolean => !(dim === 256 && cuda.devices()[0]?.sm === 90);
  test.each([64, 128, 256])('d%i: a mask listing every block gives the dense result (bit-exact on one kernel)', async (dim) => {
    const q = Tensor.randn([2, 700, 4, dim], { dtype: 'bf16', device });
    const k = Tensor.randn([2, 900, 2, dim], { dtype: 'bf16', device });
    const v = Tensor.randn([2, 900, 2, dim], { dtype: 'bf16', device });
    const full = BlockSparseMask.fromDense(new Array(6 * 8).fill(1), { numQBlocks: 6, numKBlocks: 8 }, { device });
    for (const options of [{}, { causal: true }, { window: [300, 100] as [number, number] }]) {
      const a = attention(q, k, v, options);
      const b = attention(q, k, v, { ...options, blockMask: full });
      const [ao, bo, al, bl] = await Promise.all([a.out.toArray(), b.out.toArray(), a.lse!.toArray(), b.lse!.toArray()]);
      if (sameKernel(dim)) {
        // Compared as one boolean: a mismatch of ~1e6 elements would make jest's diff run for minutes.
        expect(ao.every((x, i) => Object.is(x, bo[i]))).toBe(true);
        expect(al.every((x, i) => Object.is(x, bl[i]))).toBe(true);
      } else {
        let worst = 0;
        for (let i = 0; i < ao.length; i++) worst = Math.max(worst, Math.abs(ao[i] - bo[i]));
        expect(worst).toBeLessThan(2e-2);  // bf16 output of two kernels (|out| < ~4)
        let worstLse = 0;
        for (let i = 0; i < al.length; i++) if (al[i] !== bl[i]) worstLse = Math.max(worstLse, Math.abs(al[i] - bl[i]));  // equal infinities: 0
        expect(worstLse).toBeLessThan(1e-3);
      }
      for (const t of [a.out, a.lse!, b.out, b.lse!]) t.dispose();
    }
    for (const t of [q, k, v]) t.dispose();
    full.dispose();
  });

  test('a mask on another device is rejected', () => {
    const q = Tensor.randn([1, 128, 2, 64], { dtype: 'bf16', device });
    const m = BlockSparseMask.fromDense([1], { numQBlocks: 1, numKBlocks: 1 });
    expect(() => attention(q, q, q, { blockMask: m })).toThrow(/options.blockMask is on cpu but q is on cuda:0/);
  });
});

describeCuda('CUDA top-k decode over the paged cache', () => {
  for (const headDim of [64, 128, 256]) {
    for (const pageSize of [16, 64]) {
      test(`bf16 d${headDim} page ${pageSize}: equals float64 over the picked pages; k = all is the full decode`, async () => {
        const shadow = makeTopKCache(device, 'bf16', { headDim, pageSize, kvHeads: 2, layers: 1, capacityPages: Math.ceil(6000 / pageSize) + 64 });
        const seqs = [shadow.add(), shadow.add(), shadow.add()];
        await shadow.append(seqs, 0, [pageSize + 3, 700, 2100]);
        await shadow.append(seqs, 0, [1, 33, 5]);
        const pages = Math.ceil(2106 / pageSize);
        for (const k of [2, 5, 17]) {
          for (const numSplits of [undefined, 1, 4]) {
            const { err } = await checkTopK(shadow, seqs, 0, 8, k, { numSplits });
            expect(err).toBeLessThan(1e-2);
          }
        }
        expect(await topKMatchesFull(shadow.cache, seqs, 0, 8, pages)).toBe(true);
        expect(await topKMatchesFull(shadow.cache, seqs, 0, 8, 10 ** 6)).toBe(true);
        expect(await topKMatchesFull(shadow.cache, seqs, 0, 8, 2, [0], 3)).toBe(true); // 2 pages: all of sequence 0
      });
    }
  }

  test('f16 d128: softcap, scale, MQA; summaries across fork / copy-on-write', async () => {
    const shadow = makeTopKCache(device, 'f16', { headDim: 128, pageSize: 16, kvHeads: 1, layers: 2 });
    const a = shadow.add();
    await shadow.append([a], 0, [300]);
    await shadow.append([a], 1, [170]);
    const b = shadow.fork(a);
    await shadow.append([a, b], 0, [7, 40]);
    await shadow.append([b], 1, [3]);
    for (const layer of [0, 1]) expect((await checkTopK(shadow, [a, b], layer, 4, 6)).err).toBeLessThan(3e-3);
    expect((await checkTopK(shadow, [a, b], 0, 4, 4, { softcap: 10, scale: 0.05 })).err).toBeLessThan(3e-3);
  });

  test('many pages per sequence (radix select over thousands of candidates)', async () => {
    const shadow = makeTopKCache(device, 'bf16', { headDim: 64, pageSize: 1, kvHeads: 1, layers: 1, capacityPages: 9000 });
    const s = [shadow.add(), shadow.add()];
    await shadow.append(s, 0, [3000, 4500]);
    for (const k of [2, 100, 1000]) expect((await checkTopK(shadow, s, 0, 2, k)).err).toBeLessThan(1e-2);
  });
});
