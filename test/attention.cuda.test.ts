import { cuda, DType } from '../lib';
import { Case, caseGrid, runCase } from './helpers/cases';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;

describeCuda('CUDA attention matches the float64 reference', () => {
  const long: Array<[string, Case]> = [
    ['d128 L515 causal', { batch: 1, lenQ: [515], lenK: [515], headsQ: 2, headsKv: 1, dim: 128, options: { causal: true } }],
    ['d64 q 300 < k 1100 causal', { batch: 1, lenQ: [300], lenK: [1100], headsQ: 2, headsKv: 2, dim: 64, options: { causal: true } }],
    ['d256 L333 window', { batch: 1, lenQ: [333], lenK: [333], headsQ: 2, headsKv: 2, dim: 256, options: { window: [100, 20] } }],
    ['d128 varlen long', { batch: 3, lenQ: [700, 1, 260], lenK: [700, 900, 1], headsQ: 4, headsKv: 2, dim: 128, varlen: true, options: { causal: true } }],
    // 8k+ keys: the Hopper d128 kernel's 176-key blocks (flash_fwd_sm90_hdim128.cu), partial last block.
    ['d128 q 200 k 8300', { batch: 1, lenQ: [200], lenK: [8300], headsQ: 2, headsKv: 1, dim: 128, options: {} }],
    ['d128 varlen k 8250 causal', { batch: 2, lenQ: [130, 64], lenK: [8250, 300], headsQ: 2, headsKv: 2, dim: 128, varlen: true, options: { causal: true } }],
    // Row maxima that keep rising block after block: O's rescale runs mid-row.
    ['d128 rising scores k 1100', { batch: 1, lenQ: [300], lenK: [1100], headsQ: 2, headsKv: 1, dim: 128, keyRamp: 4, options: {} }],
    ['d64 rising scores causal', { batch: 1, lenQ: [700], lenK: [700], headsQ: 2, headsKv: 2, dim: 64, keyRamp: 4, options: { causal: true } }],
    ['d256 rising scores', { batch: 1, lenQ: [130], lenK: [900], headsQ: 2, headsKv: 2, dim: 256, keyRamp: 4, options: {} }],
    ['d128 rising scores k 8300', { batch: 1, lenQ: [64], lenK: [8300], headsQ: 2, headsKv: 1, dim: 128, keyRamp: 4, options: {} }],
    ['d128 softcap alibi L400', { batch: 1, lenQ: [400], lenK: [400], headsQ: 2, headsKv: 2, dim: 128, options: { softcap: 20, alibiSlopes: [0.1, 0.01], causal: true } }],
  ];
  for (const dtype of ['bf16', 'f16'] as DType[]) {
    describe(dtype, () => {
      test.each([...caseGrid([32, 64, 96, 128, 256]), ...long])('%s', async (_name, c) => {
        const r = await runCase(c, dtype, 'cuda:0');
        expect(r.errOut).toBeLessThan(r.tolerance);
        expect(r.errLse).toBeLessThan(1e-4);
      });
    });
  }
});
