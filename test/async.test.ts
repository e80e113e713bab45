/** The async model: ops enqueue and return; reads resolve later without blocking the event loop. */
import { attention, synchronize, Tensor } from '../lib';
import { referenceAttention, relL2 } from './helpers/reference';

describe('async model', () => {
  test('a timer keeps firing while a long CPU attention runs', async () => {
    const [S, H, D] = [1536, 8, 64];
    const q = Tensor.randn([1, S, H, D]);
    const k = Tensor.randn([1, S, H, D]);
    const v = Tensor.randn([1, S, H, D]);
    await synchronize('cpu');
    // Enough back-to-back ops for ~250 ms of work: one op alone is too short on a many-core host.
    // The probe can run slower than the ops (other test files share the cores), so the count
    // doubles until the ops take long enough for the checks below to mean something.
    const t1 = performance.now();
    const probe = attention(q, k, v).out;
    await probe.toArray();
    probe.dispose();
    let calls = Math.min(64, Math.max(1, Math.ceil(250 / Math.max(performance.now() - t1, 1))));
    let ticks = 0, enqueueMs = 0, totalMs = 0;
    let outs: Tensor[] = [];
    for (let attempt = 0; attempt < 4; attempt++, calls *= 2) {
      for (const t of outs) t.dispose();
      ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      const t0 = performance.now();
      outs = Array.from({ length: calls }, () => attention(q, k, v).out);
      enqueueMs = performance.now() - t0;
      await outs[calls - 1].toArray();
      totalMs = performance.now() - t0;
      clearInterval(timer);
      if (totalMs > 100) break;
    }
    // The ops must be long enough for the check to mean something.
    expect(totalMs).toBeGreaterThan(100);
    expect(enqueueMs).toBeLessThan(totalMs / 4);
    // A blocked loop would fire the timer at most once, after the ops.
    expect(ticks).toBeGreaterThan(totalMs / 5 / 4);
    for (const t of [q, k, v, ...outs]) t.dispose();
  }, 60_000);

  test('reads from many async tasks see the writes enqueued before them, in order', async () => {
    const x = Tensor.empty([4096]);
    const sources = Array.from({ length: 24 }, () => Tensor.randn([4096]));
    const expected = await Promise.all(sources.map((s) => s.toArray()));
    const reads = await Promise.all(
      sources.map(async (s, i) => {
        await new Promise((r) => setTimeout(r, (i * 7) % 5)); // tasks interleave in a shuffled order
        x.copyFrom(s);
        return x.toArray();
      }),
    );
    reads.forEach((r, i) => expect(Array.from(r)).toEqual(Array.from(expected[i])));
  });

  test('overwriting an input right after enqueueing an op does not change its result', async () => {
    const [S, H, D] = [40, 2, 32];
    const q = Tensor.randn([1, S, H, D]);
    const k = Tensor.randn([1, S, H, D]);
    const v = Tensor.randn([1, S, H, D]);
    const [qh, kh, vh] = await Promise.all([q.toArray(), k.toArray(), v.toArray()]);
    const { out } = attention(q, k, v, { causal: true });
    v.copyFrom(Tensor.randn([1, S, H, D])); // enqueued after the attention: must not be seen by it
    const got = await out.toArray();
    const ref = referenceAttention(
      { q: Float64Array.from(qh), k: Float64Array.from(kh), v: Float64Array.from(vh), lenQ: S, lenK: S },
      { headsQ: H, headsKv: H, dim: D, scale: 1 / Math.sqrt(D), causal: true },
    );
    expect(relL2(Array.from(got), ref.out)).toBeLessThan(1e-5);
  });
});
