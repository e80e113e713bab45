/** The addon is context-aware: several worker_threads and the main thread use it at once. */
import { spawnSync } from 'node:child_process';
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

  // Run in a child process: the failure this guards against aborts or crashes the whole process.
  // Only the worker loads the addon, so Node unloads it as the worker exits while the CPU stream
  // may still be running the worker's attention, and the pending toArray() promise can no longer
  // be settled (it used to abort with an uncaught Napi::Error, then to crash in unmapped code).
  test('terminating a worker with a read pending leaves the process running', () => {
    const entry = path.join(__dirname, '..', 'dist', 'index.js');
    const workerCode = (size: number): string =>
      `const { Tensor, attention } = require(${JSON.stringify(entry)});` +
      `const q = Tensor.randn([1, ${size}, 8, 64]); const { out } = attention(q, q, q); out.toArray();` +
      `require('node:worker_threads').parentPort.postMessage('queued');`;
    const script = `
      const { Worker } = require('node:worker_threads');
      const codes = ${JSON.stringify([2048, 2048, 16, 16, 16].map(workerCode))};
      let runs = 0;
      (async () => {
        for (const code of codes) {
          await new Promise((resolve) => {
            const w = new Worker(code, { eval: true });
            w.on('message', async () => { await w.terminate(); runs++; resolve(); });
          });
        }
        setTimeout(() => console.log('survived ' + runs), 200);
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('survived 5');
  }, 70_000);
});
