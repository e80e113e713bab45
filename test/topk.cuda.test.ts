import { cuda } from '../lib';
import { checkTopK, makeTopKCache, topKMatchesFull } from './helpers/topk';

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
});
