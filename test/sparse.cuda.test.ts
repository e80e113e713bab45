import { attention, BlockSparseMask, cuda, DType, Tensor } from '../lib';
import { radialGrid, runSparseCase, slidingGrid, SparseCase, sparseCases } from './helpers/sparse';

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
  // mask blocks, so a masked d256 call runs the sm_80 kernel; the dense d64 call runs 192-row tiles,
  // which cannot walk 128-row mask blocks, so a masked d64 call runs the 128-row sm_90a kernel. Two
  // kernels: equal up to accumulation order and contraction (lse differs in its last bit) only.
  const sameKernel = (dim: number): boolean => !((dim === 256 || dim === 64) && cuda.devices()[0]?.sm === 90);
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
