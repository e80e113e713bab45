import { cuda, mlaDecode, Tensor } from '../lib';
import { D_ROW, gaussian, makeLatentCache, MLA_SCALE, randomModel, ShadowLatentCache } from './helpers/mla';
import { checkAccounting } from './helpers/paged';
import { relL2 } from './helpers/reference';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;

// Against float64 (see test/mla.cpu.test.ts for the fp8 figures): bf16 rows, queries, P and output.
const TOL = { bf16: { out: 1e-2, lse: 5e-2 }, fp8e4m3: { out: 5e-2, lse: 0.15 } } as const;

function expectWithin(err: { out: number; lse: number }, dtype: keyof typeof TOL): void {
  expect(err.out).toBeLessThan(TOL[dtype].out);
  expect(err.lse).toBeLessThan(TOL[dtype].lse);
}

describeCuda('CUDA MLA equals decompressed float64 attention (absorption on the device)', () => {
  for (const dtype of ['bf16', 'fp8e4m3'] as const) {
    for (const heads of [16, 128]) {
      test(`${dtype}, ${heads} heads: decode over lengths 1, 40, 150 (M = ${heads >= 32 ? 64 : 16} rows per CTA)`, async () => {
        const shadow = new ShadowLatentCache(makeLatentCache('cuda:0', dtype, { pageSize: 16, capacityPages: 64 }));
        const model = randomModel(heads);
        const seqs = [shadow.add(), shadow.add(), shadow.add()];
        await shadow.append(seqs, 0, [1, 33, 100]);
        await shadow.append(seqs.slice(1), 0, [7, 50], { splitRope: true });
        expectWithin(await shadow.checkDecompressed(seqs, 0, model), dtype);
        checkAccounting(shadow.cache);
      }, 120_000);
    }
  }
});

describeCuda('CUDA MLA: prefill, fork, fp8 rounding, lifetimes', () => {
  test('bf16 prefill and multi-token decode: causal bottom-right, non-causal, softcap', async () => {
    const shadow = new ShadowLatentCache(makeLatentCache('cuda:0', 'bf16', { pageSize: 64, capacityPages: 32 }));
    const seqs = [shadow.add(), shadow.add()];
    await shadow.append(seqs, 1, [300, 40]);
    for (const heads of [16, 128]) {
      expectWithin(await shadow.checkAbsorbed(seqs, 1, heads, { queryCounts: [17, 40] }), 'bf16');
      expectWithin(await shadow.checkAbsorbed(seqs, 1, heads, { queryCounts: [2, 2], numSplits: 4 }), 'bf16');
      expectWithin(await shadow.checkAbsorbed(seqs, 1, heads, { queryCounts: [5, 0], causal: false }), 'bf16');
      expectWithin(await shadow.checkAbsorbed(seqs, 1, heads, { softcap: 2, scale: 0.2 }), 'bf16');
    }
    expectWithin(await shadow.checkDecompressed(seqs, 1, randomModel(16), { queryCounts: [9, 3] }), 'bf16');
  }, 180_000);

  for (const dtype of ['bf16', 'fp8e4m3'] as const) {
    test(`${dtype} fork / copy-on-write on the device`, async () => {
      const shadow = new ShadowLatentCache(makeLatentCache('cuda:0', dtype, { pageSize: 16 }));
      const a = shadow.add();
      await shadow.append([a], 0, [40]);
      const b = shadow.fork(a);
      await shadow.append([a, b], 0, [5, 30]);
      expectWithin(await shadow.checkAbsorbed([a, b], 0, 16), dtype);
      checkAccounting(shadow.cache);
    }, 60_000);
  }

  test('fp8: the device quantizes as the CPU does (same scales, round to nearest even)', async () => {
    const cpu = makeLatentCache('cpu', 'fp8e4m3', { computeDtype: 'bf16', pageSize: 16 });
    const gpu = makeLatentCache('cuda:0', 'fp8e4m3', { pageSize: 16 });
    const rowsHost = gaussian(200 * D_ROW);
    const qHost = gaussian(16 * D_ROW, 0.5);
    const outs: Float32Array[] = [];
    for (const cache of [cpu, gpu]) {
      const s = cache.addSequence();
      cache.append(s, 0, Tensor.fromArray(rowsHost, [200, D_ROW], { dtype: 'bf16', device: cache.device }));
      const q = Tensor.fromArray(qHost, [1, 16, D_ROW], { dtype: 'bf16', device: cache.device });
      outs.push((await mlaDecode(q, cache, 0, [s], { scale: MLA_SCALE }).out.toArray()) as Float32Array);
    }
    // Both outputs are bf16; P is bf16 on the device: a different rounding of the quantization would show as ~3e-2.
    expect(relL2(outs[1], outs[0])).toBeLessThan(8e-3);
  });

  test('disposing q right after enqueueing is safe', async () => {
    const cache = makeLatentCache('cuda:0', 'bf16');
    const s = cache.addSequence();
    cache.append(s, 0, Tensor.randn([100, D_ROW], { dtype: 'bf16', device: 'cuda:0' }));
    const q = Tensor.randn([1, 32, D_ROW], { dtype: 'bf16', device: 'cuda:0' });
    const { out } = mlaDecode(q, cache, 0, [s], { scale: MLA_SCALE });
    q.dispose();
    expect((await out.toArray()).every(Number.isFinite)).toBe(true);
  });
});

// On Hopper the 64-rows-per-CTA cases (and every fp8 cache) over pages of 16+ keys run the sm_90a
// wgmma kernel (csrc/cuda/mla/decode_sm90.cuh); the forceMma hook runs the mma.sync kernel. Both
// against float64: partial last tiles (unwritten page slots), page pieces of 16 and 32 keys,
// whole-page tiles, splits, prefill rows spanning CTAs, non-causal, softcap. Elsewhere both runs
// take the same kernel.
describeCuda('CUDA MLA: the wgmma (sm_90a) and mma.sync decode kernels both match float64', () => {
  for (const dtype of ['bf16', 'fp8e4m3'] as const) {
    for (const kernel of ['auto', 'mma'] as const) {
      for (const pageSize of dtype === 'bf16' ? [16, 32, 64] : [16, 64]) {
        test(`${kernel} kernel, ${dtype} page ${pageSize}, 128 heads: 1, 63, 65, 700, 2105 keys, splits, prefill, softcap`, async () => {
          const internals = { forceMma: kernel === 'mma' };
          const shadow = new ShadowLatentCache(makeLatentCache('cuda:0', dtype, { pageSize, layers: 1, capacityPages: Math.ceil(3200 / pageSize) + 64 }));
          const seqs = [shadow.add(), shadow.add(), shadow.add(), shadow.add(), shadow.add()];
          await shadow.append(seqs, 0, [1, 63, 65, 700, 2100]);
          await shadow.append(seqs.slice(4), 0, [5], { splitRope: true });
          for (const numSplits of [undefined, 1, 3, 16]) expectWithin(await shadow.checkAbsorbed(seqs, 0, 128, { numSplits }, internals), dtype);
          const two = seqs.slice(3);
          expectWithin(await shadow.checkAbsorbed(two, 0, 128, { queryCounts: [3, 17] }, internals), dtype);
          expectWithin(await shadow.checkAbsorbed(two, 0, 16, { queryCounts: [9, 40], numSplits: 2 }, internals), dtype);
          expectWithin(await shadow.checkAbsorbed(two, 0, 128, { queryCounts: [2, 5], causal: false }, internals), dtype);
          expectWithin(await shadow.checkAbsorbed(two, 0, 128, { softcap: 2, scale: 0.2, numSplits: 3 }, internals), dtype);
        }, 300_000);
      }
    }
  }
});
