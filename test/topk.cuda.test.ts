import { cuda, PagedKVCache, pagedAttention, Tensor } from '../lib';
import { relL2 } from './helpers/reference';
import { checkTopK, expectedChannels, makeTopKCache, topKMatchesFull } from './helpers/topk';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;
const device = 'cuda:0';

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

  for (const channels of [8, 16, 32] as const) {
    test(`label channels (${channels}): chosen like the CPU rule, picked pages follow the rule over them; k = all is the full decode`, async () => {
      const shadow = makeTopKCache(device, 'bf16', { headDim: 128, pageSize: 16, kvHeads: 2, layers: 1, capacityPages: 600, channels });
      const seqs = [shadow.add(), shadow.add(), shadow.add()];
      await shadow.append(seqs, 0, [40, 1500, 2100]);
      const first = seqs.flatMap((sq) => shadow.k.get(sq)![0].map((r) => [...r]));
      await shadow.append(seqs, 0, [3, 33, 9]);
      expect(await shadow.cache.summaryChannelIndices(0)).toEqual(expectedChannels(first, 2, 128, channels));
      for (const k of [2, 5, 40]) {
        for (const numSplits of [undefined, 2]) expect((await checkTopK(shadow, seqs, 0, 8, k, { numSplits })).err).toBeLessThan(1e-2);
      }
      expect(await topKMatchesFull(shadow.cache, seqs, 0, 8, Math.ceil(2109 / 16))).toBe(true);
    });
  }

  test('CUDA and CPU choose the same label channels and pick the same pages (same data, same query)', async () => {
    const geometry = { layers: 1, kvHeads: 8, headDim: 128, pageSize: 16, capacityPages: 200, pageSummaries: true, pageSummaryChannels: 16 } as const;
    const gpu = new PagedKVCache({ ...geometry, dtype: 'bf16', device });
    const cpu = new PagedKVCache({ ...geometry, dtype: 'bf16', device: 'cpu' });
    const [a, b] = [gpu.addSequence(), cpu.addSequence()];
    const k = Tensor.randn([3000, 8, 128], { dtype: 'bf16' });
    const v = Tensor.randn([3000, 8, 128], { dtype: 'bf16' });
    const [kg, vg] = await Promise.all([k.to(device), v.to(device)]);
    gpu.append(a, 0, kg, vg);
    cpu.append(b, 0, k, v);
    expect(await gpu.summaryChannelIndices(0)).toEqual(await cpu.summaryChannelIndices(0));
    let same = 0;
    for (let trial = 0; trial < 8; trial++) {
      const q = Tensor.randn([1, 32, 128], { dtype: 'bf16' });
      const qg = await q.to(device);
      const [og, oc] = await Promise.all([
        pagedAttention(qg, gpu, 0, [a], { topK: { pages: 24 } }).out.toArray(),
        pagedAttention(q, cpu, 0, [b], { topK: { pages: 24 } }).out.toArray(),
      ]);
      // Different page sets give outputs far apart (about 0.3 relative); the same set, bf16 rounding.
      if (relL2(Array.from(og), Array.from(oc)) < 2e-2) same++;
      for (const t of [q, qg]) t.dispose();
    }
    expect(same).toBeGreaterThanOrEqual(7); // a near-tie in float32 scores may flip one trial
    for (const t of [k, v, kg, vg]) t.dispose();
    gpu.dispose();
    cpu.dispose();
  });

  test('many candidates per sequence beyond the shared-memory stage (keys read from L2)', async () => {
    const shadow = makeTopKCache(device, 'bf16', { headDim: 64, pageSize: 1, kvHeads: 1, layers: 1, capacityPages: 13000 });
    const s = [shadow.add()];
    await shadow.append(s, 0, [12800]);
    for (const k of [3, 3000]) expect((await checkTopK(shadow, s, 0, 2, k)).err).toBeLessThan(1e-2);
  });
});
