import { attention, mlaDecode, pagedAttention, Tensor } from '../lib';
import { native, NativeTableEntries } from '../lib/native';
import { makeLatentCache } from './helpers/mla';
import { makeCache } from './helpers/paged';
import { expectThrows } from './helpers/throws';

describe('attention argument errors', () => {
  const q = Tensor.randn([1, 8, 4, 16]);
  const k = Tensor.randn([1, 8, 2, 16]);
  const v = Tensor.randn([1, 8, 2, 16]);

  const cases: Array<[string, () => unknown, RegExp, 'TypeError' | 'RangeError']> = [
    ['q not a tensor', () => attention({} as never, k, v), /^q must be a Tensor/, 'TypeError'],
    ['q from Object.create(Tensor.prototype)', () => attention(Object.create(Tensor.prototype) as Tensor, k, v), /^q is not a tensor built by attn-cuda/, 'TypeError'],
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

  test('an object that only shares the prototype gets the same error from every method', async () => {
    const fake = Object.create(Tensor.prototype) as Tensor;
    expect(String(fake)).toBe('Tensor(not built by attn-cuda)');
    for (const use of [() => fake.dispose(), () => fake.disposed, () => fake.reshape([1]), () => fake.contiguous(), () => q.copyFrom(fake)])
      expectThrows(use, 'TypeError', /is not a tensor built by attn-cuda/);
    await expect(fake.toArray()).rejects.toThrow(/^tensor is not a tensor built by attn-cuda/);
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

// Scales, softcaps and ALiBi slopes reach the kernels as float32: a double that is finite but
// past float32's range would become infinity there and turn every output into NaN.
describe('score parameters past float32', () => {
  const q = Tensor.randn([1, 8, 4, 16]);
  const k = Tensor.randn([1, 8, 2, 16]);
  const v = Tensor.randn([1, 8, 2, 16]);
  const paged = makeCache('cpu', 'f32');
  const ps = paged.addSequence();
  paged.append(ps, 0, Tensor.randn([5, 2, 32]), Tensor.randn([5, 2, 32]));
  const latent = makeLatentCache('cpu', 'f32');
  const ls = latent.addSequence();
  latent.append(ls, 0, Tensor.randn([5, 576]));
  const big = 3.5e38;
  test.each([
    ['softcap', () => attention(q, k, v, { softcap: big }), /options.softcap must be finite in float32/],
    ['scale', () => attention(q, k, v, { scale: big }), /options.scale must be finite in float32/],
    ['alibi slope', () => attention(q, k, v, { alibiSlopes: [0.5, -big, 0.25, 0.125] }), /options.alibiSlopes\[1\] must be finite in float32/],
    ['paged softcap', () => pagedAttention(Tensor.randn([1, 4, 32]), paged, 0, [ps], { softcap: big }), /options.softcap must be finite in float32/],
    ['mla scale', () => mlaDecode(Tensor.randn([1, 2, 576]), latent, 0, [ls], { scale: big }), /options.scale must be finite in float32/],
    ['mla softcap', () => mlaDecode(Tensor.randn([1, 2, 576]), latent, 0, [ls], { scale: 0.05, softcap: 1e39 }), /options.softcap must be finite in float32/],
  ] as const)('%s', (_n, fn, msg) => expectThrows(fn, 'RangeError', msg));

  test('a softcap at the top of float32 is accepted and leaves the scores as they are', async () => {
    const capped = await attention(q, k, v, { softcap: 3.4e38 }).out.toArray();
    const plain = await attention(q, k, v).out.toArray();
    expect(capped.every(Number.isFinite)).toBe(true);
    for (let i = 0; i < plain.length; i++) expect(capped[i]).toBeCloseTo(plain[i], 5);
  });
});

describe('a disposed cache', () => {
  test('throws for every use, usage() included', () => {
    const c = makeCache('cpu', 'f32');
    const s = c.addSequence();
    c.append(s, 0, Tensor.randn([3, 2, 32]), Tensor.randn([3, 2, 32]));
    expect(c.usage().sequences).toBe(1);
    c.dispose();
    expectThrows(() => c.usage(), 'TypeError', /PagedKVCache has been disposed/);
    expectThrows(() => c.append(s, 0, Tensor.randn([1, 2, 32]), Tensor.randn([1, 2, 32])), 'TypeError', /PagedKVCache has been disposed/);
    expectThrows(() => pagedAttention(Tensor.randn([1, 4, 32]), c, 0, [s]), 'TypeError', /PagedKVCache has been disposed/);
  });
});

describe('append table entries reaching the binding', () => {
  // lib/page_table.ts only sends well-formed entries; these call the binding directly. Each cache
  // has 8 pages and a [2, 8] block table (maxSequenceLength 32 at page size 4); row 0 is unused.
  const kv = makeCache('cpu', 'f32', { pageSize: 4, capacityPages: 8, maxSequences: 2 });
  const latent = makeLatentCache('cpu', 'f32', { pageSize: 4, capacityPages: 8, maxSequences: 2, layers: 1 });
  const batch = { rows: Int32Array.of(0), cuNew: Int32Array.of(0, 1), startPos: Int32Array.of(0) };
  const ops: Array<[string, Pick<typeof kv, 'blockTable'>, (entries: NativeTableEntries, tokens?: number) => void]> = [
    ['pagedAppend', kv, (e, tokens = 1) => native.pagedAppend(kv.pool, 0, Tensor.randn([tokens, 2, 32]), Tensor.randn([tokens, 2, 32]), kv.blockTable,
      { ...batch, cuNew: Int32Array.of(0, tokens), ...e })],
    ['mlaAppend', latent, (e, tokens = 1) => native.mlaAppend(latent.pool, latent.scales, 0, Tensor.randn([tokens, 576]), null, latent.blockTable,
      { ...batch, cuNew: Int32Array.of(0, tokens), ...e })],
  ];
  const bad: Array<[string, NativeTableEntries, 'TypeError' | 'RangeError', RegExp]> = [
    ['lengths differ', { tableIdx: Int32Array.of(0, 1), tablePages: Int32Array.of(3) }, 'RangeError',
      /options.tableIdx \(2 entries\) and options.tablePages \(1\) must have one length/],
    ['pages without indices', { tablePages: Int32Array.of(3) }, 'RangeError', /options.tableIdx \(0 entries\) and options.tablePages \(1\)/],
    ['index past the table', { tableIdx: Int32Array.of(16), tablePages: Int32Array.of(3) }, 'RangeError',
      /options.tableIdx\[0\] = 16 is outside the block table \[0, 16\)/],
    ['negative index', { tableIdx: Int32Array.of(1, -1), tablePages: Int32Array.of(3, 3) }, 'RangeError', /options.tableIdx\[1\] = -1 is outside the block table/],
    ['page past the pool', { tableIdx: Int32Array.of(0), tablePages: Int32Array.of(8) }, 'RangeError', /options.tablePages\[0\] = 8 is not a page of the pool \[0, 8\)/],
    ['not an Int32Array', { tableIdx: [0] as never, tablePages: Int32Array.of(3) }, 'TypeError', /options.tableIdx must be an Int32Array/],
  ];

  describe.each(ops)('%s', (_op, cache, append) => {
    test.each(bad)('%s: thrown before the table changes', async (_name, entries, cls, message) => {
      const before = await cache.blockTable.toArray();
      expectThrows(() => append(entries), cls, message);
      expect(await cache.blockTable.toArray()).toEqual(before);
    });

    test('entries of an append without tokens are stored, not dropped', async () => {
      append({ tableIdx: Int32Array.of(9, 10), tablePages: Int32Array.of(6, 7) }, 0);
      const table = await cache.blockTable.toArray();
      expect([table[9], table[10]]).toEqual([6, 7]);
    });
  });

  test('the entries are stored before the tokens are written', async () => {
    const k = Tensor.randn([1, 2, 32]);
    native.pagedAppend(kv.pool, 0, k, Tensor.randn([1, 2, 32]), kv.blockTable, { ...batch, tableIdx: Int32Array.of(0), tablePages: Int32Array.of(5) });
    // Pool [layers, 2 (k, v), pages, kvHeads, pageSize, headDim]: K of layer 0, page 5, slot 0.
    const pool = await kv.pool.toArray();
    const kh = await k.toArray();
    const slot = (head: number) => Array.from(pool.subarray(((5 * 2 + head) * 4) * 32, ((5 * 2 + head) * 4) * 32 + 32));
    expect([...slot(0), ...slot(1)]).toEqual(Array.from(kh));
  });
});

describe('the decode benchmark hook reaching the binding', () => {
  test('options.benchRotateRows (cold-L2 timing, CUDA only) is refused on the CPU', () => {
    const kv = makeCache('cpu', 'f32', { pageSize: 4, capacityPages: 8, maxSequences: 2 });
    const seq = kv.addSequence();
    kv.append(seq, 0, Tensor.randn([5, 2, 32]), Tensor.randn([5, 2, 32]));
    const { rows, seqLens } = kv.batchInfo([seq], 0, 'seqs');
    const call = () => native.pagedAttention(Tensor.randn([1, 4, 32]), kv.pool, 0, kv.blockTable, Tensor.empty([1, 4, 32]), null,
      { scale: 0.2, softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows, seqLens, numSplits: 0, benchIters: 2,
        benchRotateRows: Int32Array.of(rows[0], rows[0]) });
    expectThrows(call, 'RangeError', /options.benchRotateRows \(a benchmark hook\) needs a CUDA decode/);
    kv.dispose();
  });
});
