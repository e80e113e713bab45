import { DType } from '../lib';
import { caseGrid, runCase } from './helpers/cases';

describe('CPU attention matches the float64 reference', () => {
  const dtypes: DType[] = ['f32', 'bf16', 'f16'];
  for (const dtype of dtypes) {
    // f32 covers the whole grid at two head dims; the 16-bit storage types one head dim each.
    const dims = dtype === 'f32' ? [16, 64] : [32];
    describe(dtype, () => {
      test.each(caseGrid(dims))('%s', async (_name, c) => {
        const r = await runCase(c, dtype, 'cpu');
        expect(r.errOut).toBeLessThan(r.tolerance);
        expect(r.errLse).toBeLessThan(1e-5);
      });
    });
  }
});
