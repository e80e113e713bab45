import { cuda } from '../lib';
import { expectWithin, makeLatentCache, ShadowLatentCache } from './helpers/mla';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;

describeCuda('CUDA MLA matches float64 in latent space: long contexts, pages, splits', () => {
  for (const dtype of ['bf16', 'fp8e4m3'] as const) {
    for (const pageSize of [1, 16, 64]) {
      for (const heads of pageSize === 16 ? [16, 20, 128] : [16, 128]) {
        test(`${dtype} page ${pageSize}, ${heads} heads: decode over 34, 700, 2105 keys, every split count`, async () => {
          const shadow = new ShadowLatentCache(makeLatentCache('cuda:0', dtype, { pageSize, layers: 1, capacityPages: Math.ceil(3000 / pageSize) + 64 }));
          const seqs = [shadow.add(), shadow.add(), shadow.add()];
          await shadow.append(seqs, 0, [1, 700, 2100]);
          await shadow.append(seqs, 0, [33, 0, 5], { splitRope: true });
          for (const numSplits of [undefined, 1, 3, 16]) expectWithin(await shadow.checkAbsorbed(seqs, 0, heads, { numSplits }), dtype);
        }, 180_000);
      }
    }
  }

  // Scores that grow from both ends of the sequence toward its middle: the running max keeps
  // rising, by less than the lazy max's slack per 32-key tile (ramp 4: P grows up to 2^8 under a
  // stale max) or by more (ramp 16: alpha < 1 and O's rescale mid-sequence).
  for (const ramp of [4, 16]) {
    test(`bf16 page 64, 128 heads: rising scores (ramp ${ramp}) over 1500 keys`, async () => {
      const shadow = new ShadowLatentCache(makeLatentCache('cuda:0', 'bf16', { pageSize: 64, layers: 1, capacityPages: 64 }));
      const seqs = [shadow.add(), shadow.add()];
      await shadow.append(seqs, 0, [1500, 900], { rowScale: (k, n) => 1 + ramp * Math.min(k, n - 1 - k) / 128 });
      for (const numSplits of [1, 3]) expectWithin(await shadow.checkAbsorbed(seqs, 0, 128, { numSplits }), 'bf16');
    }, 180_000);
  }
});
