#!/usr/bin/env node
// Host (JS thread) cost of the binding per call, on the CPU device: the op's kernel runs on the
// worker pool, so the time to enqueue N calls back to back is the binding's own cost (argument
// parsing, checks, packing) plus the TypeScript layer's for the public calls.
//   node scripts/host-overhead.js [--calls 5000]
'use strict';
const path = require('node:path');
const root = path.join(__dirname, '..');
const { Tensor, PagedKVCache, pagedAttention, synchronize } = require(root);
const { native } = require(path.join(root, 'dist', 'native.js'));

const args = process.argv.slice(2);
const calls = Number(args.includes('--calls') ? args[args.indexOf('--calls') + 1] : 5000);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timeEnqueue(fn) {
  const ts = [];
  for (let r = 0; r < 7; r++) {
    await synchronize('cpu');
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) fn();
    ts.push(((performance.now() - t0) / calls) * 1000);
  }
  await synchronize('cpu');
  return median(ts);
}

async function main() {
  const kvHeads = 8, headDim = 128;
  const cache = new PagedKVCache({ layers: 1, kvHeads, headDim, pageSize: 16, device: 'cpu', dtype: 'f32', capacityPages: 4, maxSequences: 1, maxSequenceLength: 64 });
  const s = cache.addSequence();
  cache.append(s, 0, Tensor.randn([1, kvHeads, headDim]), Tensor.randn([1, kvHeads, headDim]));
  const q = Tensor.randn([1, 32, headDim]);
  const out = Tensor.empty([1, 32, headDim]);
  const { rows, seqLens } = cache.batchInfo([s], 0, 'seqs');
  const params = { scale: 0.08, softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows, seqLens, numSplits: 0 };
  const small = Tensor.empty([8], { dtype: 'int32' });
  const res = {
    'native.fill': await timeEnqueue(() => native.fill(small, 0)),
    'native.pagedAttention': await timeEnqueue(() => native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, params)),
    pagedAttention: await timeEnqueue(() => pagedAttention(q, cache, 0, [s], { out, returnLse: false })),
  };
  for (const [name, us] of Object.entries(res)) console.log(`${name}: ${us.toFixed(2)} us per call (enqueue only)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
