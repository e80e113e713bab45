import { attention, DType, Tensor } from '../lib';
import { caseGrid, runCase } from './helpers/cases';

describe('CPU attention matches the float64 reference', () => {
  const dtypes: DType[] = ['f32', 'bf16', 'f16'];
  for (const dtype of dtypes) {
    // f32 covers the whole grid at three head dims (24: not a multiple of the CPU kernel's 16-channel
    // register tiles, so its row-by-row path); the 16-bit storage types one head dim each.
    const dims = dtype === 'f32' ? [16, 24, 64] : [32];
    describe(dtype, () => {
      test.each(caseGrid(dims))('%s', async (_name, c) => {
        const r = await runCase(c, dtype, 'cpu');
        expect(r.errOut).toBeLessThan(r.tolerance);
        expect(r.errLse).toBeLessThan(1e-5);
      });
    });
  }
});

describe('CPU attention with NaN inputs', () => {
  test('rows that see a NaN key, or have a NaN query, give NaN; the others are unchanged', async () => {
    const [S, H, D] = [70, 2, 16];
    const rand = () => Array.from({ length: S * H * D }, () => Math.random() * 2 - 1);
    const qd = rand(), kd = rand(), vd = rand();
    const v = Tensor.fromArray(vd, [1, S, H, D]);
    const clean = await attention(Tensor.fromArray(qd, [1, S, H, D]), Tensor.fromArray(kd, [1, S, H, D]), v, { causal: true }).out.toArray();
    const badKey = 37; // key row 37 of head 0: causal rows >= 37 of head 0 see it
    const badQuery = 10; // query row 10 of head 1: every score of that row is NaN
    kd[(badKey * H + 0) * D + 5] = NaN;
    qd[(badQuery * H + 1) * D + 3] = NaN;
    const out = await attention(Tensor.fromArray(qd, [1, S, H, D]), Tensor.fromArray(kd, [1, S, H, D]), v, { causal: true }).out.toArray();
    for (let i = 0; i < S; ++i)
      for (let h = 0; h < H; ++h) {
        const row = Array.from(out.subarray((i * H + h) * D, (i * H + h + 1) * D));
        if ((h === 0 && i >= badKey) || (h === 1 && i === badQuery)) expect(row.every(Number.isNaN)).toBe(true);
        else expect(row).toEqual(Array.from(clean.subarray((i * H + h) * D, (i * H + h + 1) * D)));
      }
  });
});
