/** The addon is context-aware: several worker_threads and the main thread use it at once. */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { attention, Tensor } from '../lib';

// Runs in each worker: the compiled package (dist/), deterministic inputs from a seed.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { attention, Tensor, memory } = require(workerData.entry);
(async () => {
  const opts = (seed) => ({ seed });
  const q = Tensor.randn([1, 33, 4, 32], opts(1)), k = Tensor.randn([1, 47, 2, 32], opts(2)), v = Tensor.randn([1, 47, 2, 32], opts(3));
  const results = [];
  for (let i = 0; i < 5; i++) results.push(Array.from(await attention(q, k, v, { causal: true }).out.toArray()));
  for (let i = 0; i < 2000; i++) Tensor.empty([64]).dispose();
  parentPort.postMessage({ out: results[results.length - 1], same: results.every((r) => r.join() === results[0].join()), live: memory.stats().liveStorages });
})().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
`;

interface WorkerResult {
  out?: number[];
  same?: boolean;
  live?: number;
  error?: string;
}

function runWorker(entry: string): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER, { eval: true, workerData: { entry } });
    w.once('message', (m: WorkerResult) => {
      void w.terminate().then(() => resolve(m));
    });
    w.once('error', reject);
  });
}

describe('worker_threads', () => {
  test('four workers and the main thread compute the same attention concurrently', async () => {
    const entry = path.join(__dirname, '..', 'dist', 'index.js');
    const workers = Promise.all([0, 1, 2, 3].map(() => runWorker(entry)));
    const q = Tensor.randn([1, 33, 4, 32], { seed: 1 });
    const k = Tensor.randn([1, 47, 2, 32], { seed: 2 });
    const v = Tensor.randn([1, 47, 2, 32], { seed: 3 });
    const mine = Array.from(await attention(q, k, v, { causal: true }).out.toArray());
    const results = await workers;
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.same).toBe(true);
      expect(r.out).toEqual(mine);
    }
    // A worker's storages live in that worker's instance and are freed when it exits; the main
    // thread still works afterwards.
    expect(Array.from(await attention(q, k, v, { causal: true }).out.toArray())).toEqual(mine);
  }, 60_000);
});
