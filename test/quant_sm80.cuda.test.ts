import { QuantizedMode } from '../lib';
import { quantCases } from './helpers/quant';
import { checkCase, sm, supported } from './helpers/quant_cuda';

const modes = (['int8', 'int8-fp8', 'fp8'] as QuantizedMode[]).filter(supported);

// On a Hopper GPU the mode suites run the sm_90a kernel; this one keeps the sm_80 kernel (which
// every other GPU runs) covered there too.
(sm === 90 ? describe : describe.skip)('CUDA quantized attention, sm_80 kernel on Hopper', () => {
  for (const mode of modes) {
    test.each([...quantCases([64, 128])])(`${mode} bf16 random %s`, (_n, c) => checkCase(c, 'random', 'bf16', mode, true));
    test.each([...quantCases([128])])(`${mode} f16 heavy %s`, (_n, c) => checkCase(c, 'heavy', 'f16', mode, true));
    test.each([...quantCases([64])])(`${mode} bf16 shared outlier channels %s`, (_n, c) => checkCase(c, 'shared', 'bf16', mode, true));
  }
});
