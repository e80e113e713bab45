#!/usr/bin/env node
// The TypeScript layer's own cost per decode-step call (argument checks, page accounting, the
// option objects), with the native ops replaced by no-ops: what a call adds on the host before
// its kernels are launched. CPU only, no GPU needed.
//   node scripts/api-overhead.js [--batches 1,64] [--context 8192]
'use strict';
const path = require('node:path');
const root = path.join(__dirname, '..');
const { Tensor, PagedKVCache, pagedAttention } = require(root);
const { native } = require(path.join(root, 'dist', 'native.js'));

const args = process.argv.slice(2);
const argOf = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const batches = argOf('--batches', '1,64').split(',').map(Number);
const context = Number(argOf('--context', '8192'));
const kvHeads = 8, heads = 32, headDim = 128, pageSize = 16;

// µs per call: median of 5 rounds of `n` calls.
function perCall(fn, n) {
  for (let i = 0; i < n; i++) fn();
  const rounds = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    rounds.push(((performance.now() - t0) / n) * 1000);
  }
  return rounds.sort((a, b) => a - b)[2];
}

for (const batch of batches) {
  const steps = 1000;  // appended tokens per sequence over the run
  const cache = new PagedKVCache({
    layers: 1, kvHeads, headDim, pageSize, device: 'cpu', dtype: 'f32',
    capacityPages: batch * Math.ceil((context + 7 * steps) / pageSize), maxSequences: batch, maxSequenceLength: context + 7 * steps,
  });
  const k = Tensor.randn([context, kvHeads, headDim]);
  const v = Tensor.randn([context, kvHeads, headDim]);
  const seqs = Array.from({ length: batch }, () => {
    const s = cache.addSequence();
    cache.append(s, 0, k, v);
    return s;
  });
  const q = Tensor.randn([batch, heads, headDim]);
  const out = Tensor.empty([batch, heads, headDim]);
  const kNew = Tensor.randn([batch, kvHeads, headDim]);
  const vNew = Tensor.randn([batch, kvHeads, headDim]);
  const ones = new Array(batch).fill(1);
  const saved = {};
  for (const name of ['pagedAttention', 'pagedAppend', 'write', 'copyPages']) {
    saved[name] = native[name];
    native[name] = () => {};
  }
  const decode = perCall(() => pagedAttention(q, cache, 0, seqs, { out, returnLse: false }), 20000);
  const append = perCall(() => (batch === 1 ? cache.append(seqs[0], 0, kNew, vNew) : cache.append(seqs, 0, kNew, vNew, ones)), steps);
  Object.assign(native, saved);
  console.log(`batch ${batch}, ${context} cached tokens: pagedAttention ${decode.toFixed(2)} us/call, append of one token per sequence ${append.toFixed(2)} us/call (TypeScript layer alone)`);
  for (const t of [k, v, q, out, kNew, vNew]) t.dispose();
  cache.dispose();
}
