import { attention, Tensor } from '../lib';
import { describeCuda, quantModeSuite, sm } from './helpers/quant_cuda';
import { expectThrows } from './helpers/throws';

// The other modes: quant_fp8pv.cuda.test.ts ('int8-fp8'), quant_fp8.cuda.test.ts ('fp8'), and the
// sm_80 kernel on Hopper in quant_sm80.cuda.test.ts.
quantModeSuite('int8');

describeCuda('CUDA quantized attention: errors', () => {
  test('errors: head dim without a quantized kernel, fp8 on a GPU without FP8 tensor cores', () => {
    const q = Tensor.randn([1, 64, 2, 96], { dtype: 'bf16', device: 'cuda:0' });
    expectThrows(() => attention(q, q, q, { quantized: 'int8' }), 'RangeError', /quantizedAttention on cuda:0 has no kernel for dtype bf16 and head dim 96/);
    if (sm < 89) {
      const q64 = Tensor.randn([1, 64, 2, 64], { dtype: 'bf16', device: 'cuda:0' });
      expectThrows(() => attention(q64, q64, q64, { quantized: 'int8-fp8' }), 'RangeError', /compute capability 8.9/);
      expectThrows(() => attention(q64, q64, q64, { quantized: 'fp8' }), 'RangeError', /'fp8' needs FP8 tensor cores/);
    }
  });
});
