#!/usr/bin/env node
// Small-batch paged decode latency by context and split count (32 q / 8 kv heads, d128, bf16), to
// see where a batch-1 call's time goes: the fixed part (a context of one tile) against the part
// that grows with the context, and each split count's cost.
//   node scripts/decode-latency.js [--batch 1] [--page 16] [--contexts 64,2048,8192] [--splits 0,16,32]
// Split 0 is the backend's own choice. Device µs per call: CUDA events around a graph of 20
// back-to-back launches, median of 5 (as scripts/bench-gpu.js times decode). 'api': the public
// pagedAttention() (argument checks, the binding's uploads, the launch), wall clock per call over
// 200 back-to-back calls then one synchronize, median of 5: what a caller's stream spends per call.
// 'native': the same for the native op called directly with prepared arguments (binding + launch).
// --cold also times each split count with the K/V working set rotated over groups of sequences
// larger than L2 together (options.benchRotateRows), as a model's decode step meets a layer's cache
// after the other layers evicted it ('cN' columns).
// --parts adds host-cost references measured the same way: 'fill' (one small kernel launch), 'write'
// (one small upload) and 'throws' (the binding's argument checks up to a thrown error).
'use strict';
const path = require('node:path');
const root = path.join(__dirname, '..');
const { Tensor, PagedKVCache, pagedAttention, synchronize, cuda } = require(root);
const { native } = require(path.join(root, 'dist', 'native.js'));

const args = process.argv.slice(2);
const argOf = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const listOf = (name, dflt) => argOf(name, dflt).split(',').map(Number);
const batch = Number(argOf('--batch', '1'));
const pageSize = Number(argOf('--page', '16'));
const contexts = listOf('--contexts', '64,512,2048,8192,32768');
const splitCounts = listOf('--splits', '0,1,8,16,32,64');
const cold = args.includes('--cold');
const heads = 32, kvHeads = 8, headDim = 128, device = 'cuda:0';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Wall clock µs per call of fn: 200 calls back to back then one synchronize, median of 5 rounds.
async function wallPerCall(fn) {
  const walls = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) fn();
    await synchronize(device);
    walls.push(((performance.now() - t0) / 200) * 1000);
  }
  return median(walls);
}

async function main() {
  if (!cuda.isAvailable()) throw new Error(`no CUDA device: ${cuda.unavailableReason()}`);
  const rows = [];
  for (const context of contexts) {
    // --cold: enough groups of `batch` sequences that one pass over all exceeds L2 (50 MB) 4x.
    const groupBytes = batch * context * kvHeads * headDim * 2 * 2;
    const groups = cold ? Math.ceil(200e6 / groupBytes) : 1;  // one group past 200 MB is cold by itself
    const cache = new PagedKVCache({
      layers: 1, kvHeads, headDim, pageSize, device, dtype: 'bf16',
      capacityPages: groups * batch * Math.ceil(context / pageSize), maxSequences: groups * batch, maxSequenceLength: context,
    });
    const k = Tensor.randn([context, kvHeads, headDim], { dtype: 'bf16', device });
    const v = Tensor.randn([context, kvHeads, headDim], { dtype: 'bf16', device });
    const seqs = Array.from({ length: batch }, () => {
      const s = cache.addSequence();
      cache.append(s, 0, k, v);
      return s;
    });
    const others = Array.from({ length: (groups - 1) * batch }, () => {
      const s = cache.addSequence();
      cache.append(s, 0, k, v);
      return s;
    });
    const q = Tensor.randn([batch, heads, headDim], { dtype: 'bf16', device });
    const out = Tensor.empty([batch, heads, headDim], { dtype: 'bf16', device });
    const { rows: tableRows, seqLens } = cache.batchInfo(seqs, 0, 'seqs');
    const row = { batch, context, pageSize, us: {} };
    for (const numSplits of splitCounts) {
      if (numSplits > 1 && numSplits * 64 > context) continue;  // splits are whole 64-key tiles
      const params = { scale: 1 / Math.sqrt(headDim), softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows: tableRows, seqLens, numSplits };
      native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, { ...params, benchIters: 20 });
      await synchronize(device);
      const ts = [];
      for (let r = 0; r < 5; r++) ts.push(native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, { ...params, benchIters: 20 }));
      row.us[numSplits] = median(ts) * 1000;
      if (cold) {
        const benchRotateRows = cache.batchInfo([...seqs, ...others], 0, 'seqs').rows;
        const tc = [];
        for (let r = 0; r < 5; r++) tc.push(native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, { ...params, benchIters: 20 * groups, benchRotateRows }));
        row.us[`c${numSplits}`] = median(tc) * 1000;
      }
    }
    if (cold) {
      // The same K/V bytes only read (cuda/timing/read_floor.h), warm and rotated over `groups`
      // windows like the cold decode.
      const buf = Tensor.randn([(groupBytes * groups) / 2], { dtype: 'bf16', device });
      row.us.floorWarm = native.readFloor(buf, groupBytes, 1, 20).ms * 1000;
      row.us.floorCold = native.readFloor(buf, groupBytes, groups, 20 * groups).ms * 1000;
      buf.dispose();
    }
    const apiCall = () => pagedAttention(q, cache, 0, seqs, { out, returnLse: false });
    apiCall();
    await synchronize(device);
    row.us.api = await wallPerCall(apiCall);
    // The binding and launch alone: the same call straight to the native op, its arguments built once.
    const nativeParams = { scale: 1 / Math.sqrt(headDim), softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows: tableRows, seqLens, numSplits: 0 };
    row.us.native = await wallPerCall(() => native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, nativeParams));
    if (args.includes('--parts')) {
      // Where the native call's host time goes: a launch alone (fill of 8 ints), an upload alone
      // (write of 8 ints), a call that throws in the binding's argument checks.
      const small = Tensor.empty([8], { dtype: 'int32', device });
      const eight = Int32Array.from({ length: 8 }, (_, i) => i);
      const bad = { ...nativeParams, rows: Int32Array.of(-1) };
      const parts = {
        fill: () => native.fill(small, 0),
        write: () => native.write(small, eight),
        throws: () => { try { native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, bad); } catch { /* expected */ } },
      };
      for (const [name, fn] of Object.entries(parts)) row.us[name] = await wallPerCall(fn);
      small.dispose();
    }
    rows.push(row);
    console.log(`batch ${batch} context ${context}: ${Object.entries(row.us).map(([n, us]) => `${n === '0' ? 'auto' : n === 'c0' ? 'cold-auto' : n}:${us.toFixed(1)}`).join('  ')} us`);
    for (const t of [k, v, q, out]) t.dispose();
    cache.dispose();
  }
  if (args.includes('--json')) console.log(JSON.stringify(rows));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
