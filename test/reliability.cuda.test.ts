/** Device failure modes: out-of-memory recovery and sticky CUDA errors (GPU machines only). */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { cuda, memory, synchronize, Tensor } from '../lib';
import { expectThrows } from './helpers/throws';

const describeCuda = cuda.isAvailable() ? describe : describe.skip;
const device = 'cuda:0';

describeCuda('CUDA reliability', () => {
  test('out of memory throws a catchable Error; the cache is emptied and retried; later allocations work', async () => {
    expectThrows(() => Tensor.empty([2 ** 40], { dtype: 'int8', device }), 'Error', /CUDA out of memory/);
    const total = cuda.devices()[0].totalMemory;
    // Fill the allocator's cache with freed blocks of one size, then ask for one block that fits
    // only once those cached blocks are given back to the driver.
    const chunk = Math.floor(total / 8 / 256) * 256;
    const held = Array.from({ length: 5 }, () => Tensor.empty([chunk], { dtype: 'int8', device }));
    held.forEach((t) => t.dispose());
    await synchronize(device);
    expect(memory.stats(device).reservedBytes).toBeGreaterThanOrEqual(5 * chunk);
    const big = Tensor.empty([Math.floor(total * 0.6)], { dtype: 'int8', device });
    big.dispose();
    const t = Tensor.randn([1024], { device });
    expect((await t.toArray()).every(Number.isFinite)).toBe(true);
    t.dispose();
    memory.emptyCache(device);
  }, 60_000);

  test('after a sticky CUDA error (illegal address) every call throws a clear error, no crash', () => {
    const script = `
      const { Tensor, synchronize } = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'index.js'))});
      const { native } = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'native.js'))});
      const device = 'cuda:0';
      (async () => {
        const pool = Tensor.randn([1, 2, 4, 1, 16, 64], { dtype: 'bf16', device });
        const table = Tensor.fromArray([2 ** 30], [1, 1], { dtype: 'int32', device }); // a page far outside the pool
        const q = Tensor.randn([1, 1, 64], { dtype: 'bf16', device });
        const out = Tensor.empty([1, 1, 64], { dtype: 'bf16', device });
        const msg = async (fn) => { try { await fn(); return 'no error'; } catch (e) { return e.name + ': ' + e.message; } };
        const first = await msg(async () => {
          native.pagedAttention(q, pool, 0, table, out, null, { scale: 0.125, softcap: 0, causal: true, windowLeft: -1, windowRight: -1,
            rows: Int32Array.of(0), seqLens: Int32Array.of(16), numSplits: 1 });
          await synchronize(device);
        });
        const second = await msg(async () => { Tensor.randn([4], { device }); await synchronize(device); });
        const third = await msg(() => out.toArray());
        console.log(JSON.stringify({ first, second, third }));
      })();`;
    const res = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim().split('\n').pop()!) as Record<string, string>;
    for (const m of Object.values(res)) expect(m).toMatch(/^Error: .*CUDA error cudaError\w+: .*(illegal|invalid|memory)/i);
  }, 60_000);
});
