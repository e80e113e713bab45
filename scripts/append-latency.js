#!/usr/bin/env node
// Host cost of a decode step's append for a batch in lockstep: `--batch` sequences each append one
// token per step to a bf16 PagedKVCache (8 kv heads, d128, page 16), so every 16th step all of them
// cross a page boundary at once and the step also stores `batch` block-table entries.
//   node scripts/append-latency.js [--batch 64] [--steps 256] [--device cuda:0]
// Prints the median wall clock per append call of steps that cross a page and of steps that do
// not (calls back to back, one synchronize per 16 steps).
'use strict';
const path = require('node:path');
const { Tensor, PagedKVCache, synchronize } = require(path.join(__dirname, '..'));

const args = process.argv.slice(2);
const argOf = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const batch = Number(argOf('--batch', '64'));
const steps = Number(argOf('--steps', '256'));
const device = argOf('--device', 'cuda:0');
const pageSize = 16, kvHeads = 8, headDim = 128;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const cache = new PagedKVCache({
    layers: 1, kvHeads, headDim, pageSize, device, dtype: 'bf16',
    capacityPages: batch * Math.ceil((steps + 1) / pageSize), maxSequences: batch, maxSequenceLength: steps + pageSize,
  });
  const seqs = Array.from({ length: batch }, () => cache.addSequence());
  const k = Tensor.randn([batch, kvHeads, headDim], { dtype: 'bf16', device });
  const v = Tensor.randn([batch, kvHeads, headDim], { dtype: 'bf16', device });
  const counts = seqs.map(() => 1);
  const crossing = [], inside = [];
  await synchronize(device);
  for (let step = 0; step < steps; step++) {
    const t0 = performance.now();
    cache.append(seqs, 0, k, v, counts);
    const us = (performance.now() - t0) * 1000;
    (step % pageSize === 0 ? crossing : inside).push(us);
    if (step % pageSize === pageSize - 1) await synchronize(device);
  }
  await synchronize(device);
  console.log(`append batch ${batch} on ${device}: page-crossing steps ${median(crossing).toFixed(1)} us (max ${Math.max(...crossing).toFixed(1)}), other steps ${median(inside).toFixed(1)} us`);
  for (const t of [k, v]) t.dispose();
  cache.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
