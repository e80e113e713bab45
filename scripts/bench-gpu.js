#!/usr/bin/env node
// attn-cuda's side of the GPU benchmark (scripts/gpu-check.sh runs it next to bench_torch.py).
//   node scripts/bench-gpu.js OUT.json [--quick] [--only dense|decode|mla]
// dense: the FlashAttention grid (head dim {64,128,256} x seq {512..16k} x causal, 16k tokens/batch).
// decode: paged decode, 32 q heads / 8 kv heads, d128, bf16, batch {1,16,64,128} x context {2k,8k,32k},
//         page size 16 and 256, timed by CUDA events around back-to-back launches (no JS overhead).
// mla (only with --only mla): MLA decode over PagedLatentCache, batch 64, heads {16,128}, context
//         {4k..32k}, bf16 and fp8 caches, page 64; latent cache TB/s and TFLOP/s.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
const { Tensor, PagedKVCache, PagedLatentCache, synchronize, cuda } = require(root);
const { benchAttention, defaultGrid } = require(path.join(root, 'dist', 'bench.js'));
const { native } = require(path.join(root, 'dist', 'native.js'));

const args = process.argv.slice(2);
const outPath = args.find((a) => !a.startsWith('--')) || 'bench-attn.json';
const quick = args.includes('--quick');
const argOf = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const only = argOf('--only');
const listOf = (name) => (argOf(name) ? argOf(name).split(',').map(Number) : undefined);
const dims = listOf('--dims'); // dense: only these head dims
const seqs = listOf('--seqs'); // dense: only these sequence lengths
const sweepSplits = listOf('--sweep-splits'); // decode: also time these split counts at batch <= 16
if (!cuda.isAvailable()) {
  console.error(`no CUDA device: ${cuda.unavailableReason()}`);
  process.exit(1);
}
const device = 'cuda:0';

async function dense() {
  const grid = defaultGrid(device, quick).filter((c) => (!dims || dims.includes(c.headDim)) && (!seqs || seqs.includes(c.seqLen)));
  return benchAttention(grid, {
    device,
    onProgress: (i, n, c) => process.stderr.write(`dense [${i + 1}/${n}] d${c.headDim} seq ${c.seqLen}${c.causal ? ' causal' : ''}\n`),
  });
}

const DECODE = { heads: 32, kvHeads: 8, headDim: 128 };

// Median device ms per launch of native paged attention over (pool, table), timed by events.
async function timeDecode(q, pool, table, out, rows, seqLens, numSplits = 0) {
  const params = { scale: 1 / Math.sqrt(DECODE.headDim), softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows, seqLens, numSplits };
  // Warm-up: one launch, then a timed burst that is thrown away (clocks ramp, caches fill).
  native.pagedAttention(q, pool, 0, table, out, null, params);
  native.pagedAttention(q, pool, 0, table, out, null, { ...params, benchIters: 20 });
  await synchronize(device);
  const times = [];
  for (let r = 0; r < 5; r++) times.push(native.pagedAttention(q, pool, 0, table, out, null, { ...params, benchIters: 20 }));
  times.sort((a, b) => a - b);
  return times[2];
}

function decodeResult(batch, context, pageSize, ms) {
  const { heads, kvHeads, headDim } = DECODE;
  const bytes = batch * context * kvHeads * headDim * 2 * 2; // K and V, bf16, each read once
  return { batch, context, pageSize, heads, kvHeads, headDim, ms, tbps: bytes / (ms * 1e-3) / 1e12 };
}

// Through PagedKVCache: tokens appended by the append kernel, the cache's own block table.
async function decodeCase(batch, context, pageSize) {
  const { heads, kvHeads, headDim } = DECODE;
  const cache = new PagedKVCache({
    layers: 1, kvHeads, headDim, pageSize, dtype: 'bf16', device,
    capacityPages: batch * Math.ceil(context / pageSize), maxSequences: batch, maxSequenceLength: context,
  });
  const k = Tensor.randn([context, kvHeads, headDim], { dtype: 'bf16', device });
  const v = Tensor.randn([context, kvHeads, headDim], { dtype: 'bf16', device });
  const seqs = [];
  for (let b = 0; b < batch; b++) {
    const s = cache.addSequence();
    cache.append(s, 0, k, v);
    seqs.push(s);
  }
  const q = Tensor.randn([batch, heads, headDim], { dtype: 'bf16', device });
  const out = Tensor.empty([batch, heads, headDim], { dtype: 'bf16', device });
  const { rows, seqLens } = cache.batchInfo(seqs, 0, 'seqs');
  const ms = await timeDecode(q, cache.pool, cache.blockTable, out, rows, seqLens);
  const result = decodeResult(batch, context, pageSize, ms);
  if (sweepSplits && batch <= 16) {
    result.splits = {};
    for (const n of sweepSplits) result.splits[n] = await timeDecode(q, cache.pool, cache.blockTable, out, rows, seqLens, n);
    process.stderr.write(`  splits (us): ${Object.entries(result.splits).map(([n, t]) => `${n}:${(t * 1000).toFixed(1)}`).join(' ')}\n`);
  }
  for (const t of [k, v, q, out]) t.dispose();
  cache.dispose();
  return result;
}

// The contiguous baseline: one page per sequence holding its whole context (page size = context).
async function contiguousCase(batch, context) {
  const { heads, kvHeads, headDim } = DECODE;
  const pool = Tensor.randn([1, 2, batch, kvHeads, context, headDim], { dtype: 'bf16', device });
  const table = Tensor.fromArray(Int32Array.from({ length: batch }, (_, b) => b), [batch, 1], { dtype: 'int32', device });
  const q = Tensor.randn([batch, heads, headDim], { dtype: 'bf16', device });
  const out = Tensor.empty([batch, heads, headDim], { dtype: 'bf16', device });
  const rows = Int32Array.from({ length: batch }, (_, b) => b);
  const seqLens = new Int32Array(batch).fill(context);
  const ms = await timeDecode(q, pool, table, out, rows, seqLens);
  for (const t of [pool, table, q, out]) t.dispose();
  return decodeResult(batch, context, 'contiguous', ms);
}

async function decode() {
  const results = [];
  const batches = quick ? [1, 64] : [1, 16, 64, 128];
  const contexts = quick ? [8192] : [2048, 8192, 32768];
  for (const batch of batches)
    for (const context of contexts) {
      process.stderr.write(`decode batch ${batch} context ${context}\n`);
      for (const pageSize of [16, 256]) results.push(await decodeCase(batch, context, pageSize));
      results.push(await contiguousCase(batch, context));
    }
  return results;
}

// MLA decode (absorbed weights): the 576-wide latent rows of every token are read once per step.
const MLA = { batch: 64, pageSize: 64, scale: 1 / Math.sqrt(192) };

async function mlaCase(heads, context, dtype) {
  const { batch, pageSize } = MLA;
  const cache = new PagedLatentCache({
    layers: 1, pageSize, dtype, device, capacityPages: batch * Math.ceil(context / pageSize), maxSequences: batch, maxSequenceLength: context,
  });
  const rows = Tensor.randn([context, 576], { dtype: 'bf16', device });
  const seqs = [];
  for (let b = 0; b < batch; b++) {
    const s = cache.addSequence();
    cache.append(s, 0, rows);
    seqs.push(s);
  }
  const q = Tensor.randn([batch, heads, 576], { dtype: 'bf16', device, std: 0.5 });
  const out = Tensor.empty([batch, heads, 512], { dtype: 'bf16', device });
  const { rows: tableRows, seqLens } = cache.batchInfo(seqs, 0, 'seqs');
  const params = { scale: MLA.scale, softcap: 0, causal: true, rows: tableRows, seqLens, numSplits: 0 };
  const launch = (iters) => native.mlaAttention(q, cache.pool, cache.scales, 0, cache.blockTable, out, null, { ...params, benchIters: iters });
  native.mlaAttention(q, cache.pool, cache.scales, 0, cache.blockTable, out, null, params);
  launch(10); // warm-up burst, thrown away
  await synchronize(device);
  const times = [];
  for (let r = 0; r < 5; r++) times.push(launch(20));
  times.sort((a, b) => a - b);
  const ms = times[2];
  for (const t of [rows, q, out]) t.dispose();
  cache.dispose();
  const bytes = batch * context * (dtype === 'fp8e4m3' ? 576 + 8 : 576 * 2); // rows (and fp8 scales) read once
  const flops = 2 * (576 + 512) * heads * context * batch;
  return { batch, heads, context, dtype, pageSize, ms, tbps: bytes / (ms * 1e-3) / 1e12, tflops: flops / (ms * 1e-3) / 1e12 };
}

async function mla() {
  const results = [];
  for (const heads of [16, 128])
    for (const context of quick ? [8192] : [4096, 8192, 16384, 32768])
      for (const dtype of ['bf16', 'fp8e4m3']) {
        const r = await mlaCase(heads, context, dtype);
        process.stderr.write(`mla ${dtype} heads ${heads} context ${context}: ${(r.ms * 1000).toFixed(1)} us, ${r.tbps.toFixed(2)} TB/s, ${r.tflops.toFixed(0)} TFLOP/s\n`);
        results.push(r);
      }
  return results;
}

(async () => {
  const result = { device: cuda.devices()[0], date: new Date().toISOString() };
  if (!only || only === 'dense') result.dense = await dense();
  if (!only || only === 'decode') result.decode = await decode();
  if (only === 'mla') result.mla = await mla();
  fs.writeFileSync(outPath, JSON.stringify(result, null, 2));
  console.error(`wrote ${outPath}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
