import { cuda, Tensor, pagedAttention } from '../lib';
import { checkAccounting, makeCache, ShadowCache } from './helpers/paged';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;

describeCuda('CUDA paged attention matches float64 on the gathered KV', () => {
  for (const headDim of [64, 128, 256]) {
    for (const pageSize of [1, 8, 16, 64, 256]) {
      test(`bf16 d${headDim} page ${pageSize}: decode, GQA 4:1, every split count`, async () => {
        const shadow = new ShadowCache(makeCache('cuda:0', 'bf16', { headDim, pageSize, kvHeads: 2, capacityPages: Math.ceil(6000 / pageSize) + 64 }));
        const seqs = [shadow.add(), shadow.add(), shadow.add()];
        await shadow.append(seqs, 0, [1, 700, 2100]);
        await shadow.append(seqs, 0, [33, 0, 5]);
        // Up to 64 splits merge inside the decode kernel (up to 16 as a cluster where it fits, else the
        // last split of each CTA row; at 40 a lane of that combine takes its splits in 2-3 batches);
        // 100 runs the separate combine kernel. Most splits of the short sequences see no key.
        for (const numSplits of [undefined, 1, 3, 16, 40, 100]) expect(await shadow.check(seqs, 0, 8, { numSplits })).toBeLessThan(1e-2);
        checkAccounting(shadow.cache);
      });
    }
  }

  test('page slots past a sequence\'s end hold NaN: no split lets them into the output', async () => {
    // A masked key's P is 0, but 0 x NaN is NaN: the kernel must zero-fill V rows past the end.
    for (const pageSize of [1, 8, 16, 64]) {
      for (const headDim of [64, 128]) {
        const cache = makeCache('cuda:0', 'bf16', { headDim, pageSize, kvHeads: 2, capacityPages: Math.ceil(1400 / pageSize) + 8 });
        cache.pool.copyFrom(Tensor.full([...cache.pool.shape], NaN, { dtype: 'bf16', device: 'cuda:0' }));
        const shadow = new ShadowCache(cache);
        const seqs = [shadow.add(), shadow.add(), shadow.add()];
        await shadow.append(seqs, 0, [5, 333, 1001]);
        for (const numSplits of [undefined, 1, 3, 7]) expect(await shadow.check(seqs, 0, 8, { numSplits })).toBeLessThan(1e-2);
      }
    }
  });

  test('decode with KV groups of 1, 2, 8 and 16 query heads (both tile layouts), with softcap, ALiBi and a window', async () => {
    // Groups of <= 8 heads run the keys-on-M tile math (heads on the MMA's N side: group 8 fills all
    // 8 columns, 1 and 2 leave most of them padding); 16 runs the pairs-on-M math.
    for (const headDim of [64, 128]) {
      const shadow = new ShadowCache(makeCache('cuda:0', 'bf16', { headDim, pageSize: 16, kvHeads: 2, capacityPages: 256 }));
      const seqs = [shadow.add(), shadow.add()];
      await shadow.append(seqs, 0, [37, 1500]);
      for (const group of [1, 2, 8, 16]) {
        const heads = 2 * group;
        for (const numSplits of [undefined, 1, 5]) expect(await shadow.check(seqs, 0, heads, { numSplits })).toBeLessThan(1e-2);
        const alibiSlopes = Array.from({ length: heads }, (_, h) => 0.3 / (h + 1));
        expect(await shadow.check(seqs, 0, heads, { softcap: 20, alibiSlopes, window: [300, -1], numSplits: 3 })).toBeLessThan(1e-2);
      }
    }
  });

  test('decode batches on both sides of the 32 sequences the kernel arguments carry', async () => {
    const shadow = new ShadowCache(makeCache('cuda:0', 'bf16', { headDim: 128, pageSize: 16, kvHeads: 2, capacityPages: 1024, maxSequences: 48 }));
    const seqs = Array.from({ length: 40 }, () => shadow.add());
    await shadow.append(seqs, 0, seqs.map((_, i) => 1 + ((i * 37) % 300)));
    // Reversed: entry i of a call is not table row i. Up to 32 sequences ride in the kernel's
    // arguments, 33 and more go through a device upload; both must read the right rows and lengths.
    const order = [...seqs].reverse();
    for (const n of [1, 7, 32, 33, 40]) {
      for (const numSplits of [undefined, 1, 4]) expect(await shadow.check(order.slice(0, n), 0, 8, { numSplits })).toBeLessThan(1e-2);
    }
  });

  test('f16 prefill with window, softcap and ALiBi', async () => {
    const shadow = new ShadowCache(makeCache('cuda:0', 'f16', { headDim: 128, pageSize: 16, kvHeads: 1 }));
    const seqs = [shadow.add(), shadow.add()];
    await shadow.append(seqs, 1, [300, 40]);
    expect(await shadow.check(seqs, 1, 4, { queryCounts: [17, 40] })).toBeLessThan(3e-3);
    expect(await shadow.check(seqs, 1, 4, { queryCounts: [17, 40], numSplits: 3 })).toBeLessThan(3e-3);
    expect(await shadow.check(seqs, 1, 4, { window: [64, -1], softcap: 10 })).toBeLessThan(3e-3);
    expect(await shadow.check(seqs, 1, 4, { alibiSlopes: [0.2, 0.1, 0.05, 0.01], numSplits: 4 })).toBeLessThan(3e-3);
  });

  test('fork / copy-on-write on the device', async () => {
    const shadow = new ShadowCache(makeCache('cuda:0', 'bf16', { headDim: 64, pageSize: 16 }));
    const a = shadow.add();
    await shadow.append([a], 0, [40]);
    const b = shadow.fork(a);
    await shadow.append([a, b], 0, [5, 30]);
    expect(await shadow.check([a, b], 0, 4)).toBeLessThan(1e-2);
    checkAccounting(shadow.cache);
  });

  test('disposing q right after enqueueing is safe', async () => {
    const cache = makeCache('cuda:0', 'bf16', { headDim: 128 });
    const s = cache.addSequence();
    cache.append(s, 0, Tensor.randn([100, 2, 128], { dtype: 'bf16', device: 'cuda:0' }), Tensor.randn([100, 2, 128], { dtype: 'bf16', device: 'cuda:0' }));
    const q = Tensor.randn([1, 8, 128], { dtype: 'bf16', device: 'cuda:0' });
    const { out } = pagedAttention(q, cache, 0, [s]);
    q.dispose();
    expect((await out.toArray()).every(Number.isFinite)).toBe(true);
  });
});
