import { attention, Tensor } from '../lib';
import { expectThrows } from './helpers/throws';

describe('attention argument errors', () => {
  const q = Tensor.randn([1, 8, 4, 16]);
  const k = Tensor.randn([1, 8, 2, 16]);
  const v = Tensor.randn([1, 8, 2, 16]);

  const cases: Array<[string, () => unknown, RegExp, 'TypeError' | 'RangeError']> = [
    ['q not a tensor', () => attention({} as never, k, v), /^q must be a Tensor/, 'TypeError'],
    ['k not a tensor', () => attention(q, null as never, v), /^k must be a Tensor/, 'TypeError'],
    ['dtype mismatch', () => attention(q, Tensor.randn([1, 8, 2, 16], { dtype: 'bf16' }), v), /k has dtype bf16/, 'TypeError'],
    ['rank', () => attention(Tensor.randn([8, 4, 16]), k, v), /q must be \[batch, seq, heads, headDim\]/, 'RangeError'],
    ['head dim', () => attention(q, Tensor.randn([1, 8, 2, 8]), Tensor.randn([1, 8, 2, 8])), /k head dim 8/, 'RangeError'],
    ['v shape', () => attention(q, k, Tensor.randn([1, 9, 2, 16])), /v shape/, 'RangeError'],
    ['heads', () => attention(q, Tensor.randn([1, 8, 3, 16]), Tensor.randn([1, 8, 3, 16])), /multiple of k\/v heads/, 'RangeError'],
    ['batch', () => attention(q, Tensor.randn([2, 8, 2, 16]), Tensor.randn([2, 8, 2, 16])), /batch/, 'RangeError'],
    ['last dim stride', () => attention(Tensor.randn([1, 8, 16, 4]).permute([0, 1, 3, 2]), k, v), /contiguous in its last/, 'RangeError'],
    ['unknown option', () => attention(q, k, v, { casual: true } as never), /options.casual is not a known option/, 'TypeError'],
    ['causal type', () => attention(q, k, v, { causal: 1 as never }), /options.causal must be a boolean/, 'TypeError'],
    ['window shape', () => attention(q, k, v, { window: [1] as never }), /options.window/, 'TypeError'],
    ['window range', () => attention(q, k, v, { window: [-2, 0] }), /options.window\[0\]/, 'RangeError'],
    ['softcap', () => attention(q, k, v, { softcap: -1 }), /options.softcap/, 'RangeError'],
    ['scale', () => attention(q, k, v, { scale: NaN }), /options.scale/, 'RangeError'],
    ['alibi length', () => attention(q, k, v, { alibiSlopes: [1, 2] }), /options.alibiSlopes/, 'RangeError'],
    ['cuSeqlens pair', () => attention(Tensor.randn([8, 4, 16]), Tensor.randn([8, 2, 16]), Tensor.randn([8, 2, 16]), { cuSeqlensQ: [0, 8] }), /go together/, 'TypeError'],
    ['cuSeqlens end', () => attention(Tensor.randn([8, 4, 16]), Tensor.randn([8, 2, 16]), Tensor.randn([8, 2, 16]), { cuSeqlensQ: [0, 7], cuSeqlensK: [0, 8] }), /cuSeqlensQ must end at 8/, 'RangeError'],
    ['cuSeqlens order', () => attention(Tensor.randn([8, 4, 16]), Tensor.randn([8, 2, 16]), Tensor.randn([8, 2, 16]), { cuSeqlensQ: [0, 9, 8], cuSeqlensK: [0, 4, 8] }), /non-decreasing/, 'RangeError'],
    ['out shape', () => attention(q, k, v, { out: Tensor.randn([1, 8, 4, 8]) }), /options.out must match/, 'RangeError'],
    ['int dtype', () => attention(Tensor.full([1, 8, 4, 16], 1, { dtype: 'int8' }), Tensor.full([1, 8, 2, 16], 2, { dtype: 'int8' }), Tensor.full([1, 8, 2, 16], 3, { dtype: 'int8' })), /no kernel for dtype int8/, 'RangeError'],
  ];
  test.each(cases)('%s', (_name, fn, message, cls) => expectThrows(fn, cls, message));

  test('disposed input', () => {
    const d = Tensor.randn([1, 8, 4, 16]);
    d.dispose();
    expect(() => attention(d, k, v)).toThrow(/q has been disposed/);
  });

  test('disposing inputs right after enqueueing is safe', async () => {
    const qq = Tensor.randn([1, 64, 4, 16]);
    const kk = Tensor.randn([1, 64, 2, 16]);
    const vv = Tensor.randn([1, 64, 2, 16]);
    const { out } = attention(qq, kk, vv);
    qq.dispose();
    kk.dispose();
    vv.dispose();
    const o = await out.toArray();
    expect(o.every(Number.isFinite)).toBe(true);
  });
});
