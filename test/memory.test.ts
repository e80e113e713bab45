/** Memory safety: create/dispose cycles stay flat, huge requests fail cleanly. */
import { memory, synchronize, Tensor } from '../lib';
import { settleFinalizers } from './helpers/gc';
import { expectThrows } from './helpers/throws';

describe('memory', () => {
  test('100k create/dispose cycles leave allocator stats and RSS flat', async () => {
    await synchronize('cpu');
    const warm = () => {
      for (let i = 0; i < 10_000; i++) {
        const t = i % 2 ? Tensor.empty([64]) : Tensor.fromArray([i, 1, 2, 3], [4]);
        t.dispose();
      }
    };
    warm(); // first-use allocations (caches, JIT) happen here, not in the measured loop
    await synchronize('cpu');
    // Let finalizers of tensors earlier tests left to the GC run first, so they are not counted.
    await settleFinalizers();
    const before = memory.stats();
    const rssBefore = process.memoryUsage().rss;
    for (let round = 0; round < 10; round++) warm();
    await settleFinalizers();
    const after = memory.stats();
    expect(after.liveStorages).toBeLessThanOrEqual(before.liveStorages);
    expect(after.allocatedBytes).toBeLessThanOrEqual(before.allocatedBytes);
    expect(after.allocations - before.allocations).toBe(100_000);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 2 ** 20);
  }, 60_000);

  test('an impossible host allocation throws a RangeError and later allocations work', async () => {
    // 2^48 bytes: past x86-64's 47-bit user address space, so no overcommit policy grants it (2^46
    // bytes did on a host with overcommit on), and under the 2^49-byte request limit.
    expectThrows(() => Tensor.empty([2 ** 36, 2 ** 10]), 'RangeError', /out of host memory/);
    expectThrows(() => Tensor.empty([2 ** 31, 2 ** 20]), 'RangeError', /shape .* holds more than 2\^48 elements/);
    const t = Tensor.fromArray([1, 2, 3], [3]);
    expect(Array.from(await t.toArray())).toEqual([1, 2, 3]);
  });
});
