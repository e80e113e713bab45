import { cuda, mlaDecode, Tensor } from '../lib';
import { D_ROW, expectWithin, gaussian, makeLatentCache, MLA_SCALE, randomModel, ShadowLatentCache } from './helpers/mla';
import { checkAccounting } from './helpers/paged';
import { relL2 } from './helpers/reference';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;

// The wgmma (sm_90a) and mma.sync kernels over 128 heads, partial tiles, splits and prefill:
// test/mla_sm90.cuda.test.ts and test/mla_mma.cuda.test.ts. Long contexts: test/mla_long.cuda.test.ts.

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
