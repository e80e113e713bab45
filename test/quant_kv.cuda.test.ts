import { cuda } from '../lib';
import { kvContract, KvCase, makeKvData, quantKvCases, runKvCase } from './helpers/quant_kv';
import { expectMeets } from './helpers/quant';
import { relL2 } from './helpers/reference';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;

describeCuda('CUDA quantized paged KV cache', () => {
  const cases: Array<[string, KvCase]> = quantKvCases('cuda:0', [64, 128, 256]);
  for (const dtype of ['int8', 'fp8'] as const)
    for (const pageSize of [1, 64])
      for (const numSplits of [1, 5]) {
        cases.push([`${dtype} heavy d128 page ${pageSize} splits ${numSplits}`, {
          device: 'cuda:0', dtype, computeDtype: 'f16', headDim: 128, pageSize, kvHeads: 1, heads: 4, lens: [3000, 129, 64], kind: 'heavy', options: { numSplits },
        }]);
      }
  test.each(cases)('%s: contract vs float64, agreement with the CPU cache', async (_n, c) => {
    const data = makeKvData(c);
    const [r, cpu] = await Promise.all([runKvCase(c, data), runKvCase({ ...c, device: 'cpu' }, data)]);
    expectMeets(r, kvContract(_n, c));
    expect(relL2(r.out, cpu.out)).toBeLessThan(1e-2);
  });
});
