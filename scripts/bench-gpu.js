#!/usr/bin/env node
// attn-cuda's side of the GPU benchmark (scripts/gpu-check.sh runs it next to bench_torch.py).
//   node scripts/bench-gpu.js OUT.json [--quick] [--only dense,decode,mla,sparse,topk,quant,quantfwd,quantkv,prefill] (a comma list)
// dense: the FlashAttention grid (head dim {64,128,256} x seq {512..16k} x causal, 16k tokens/batch).
// decode: paged decode, 32 q heads / 8 kv heads, d128, bf16, batch {1,16,64,128} x context {2k,8k,32k},
//         page size 16 and 256, timed by CUDA events around back-to-back launches (no JS overhead).
// mla (only with --only mla): MLA decode over PagedLatentCache, batch 64, heads {16,128}, context
//         {4k..32k}, bf16 and fp8 caches, page 64; latent cache TB/s and TFLOP/s. bf16 at 128 heads
//         and fp8 run twice: the default dispatch ('auto': the sm_90a wgmma kernel on Hopper) and
//         the mma.sync kernel ('mma', the forceMma hook). --heads narrows the head counts (e.g. 128).
// sparse (only with --only sparse): block-sparse forward at 16k (d128, bf16, 16 heads) with masks of
//         density 100/50/25/10% vs dense (timed next to each mask), and top-k decode (1/8 of the
//         pages) vs full decode at 32k, with the selection alone and the decode alone timed too,
//         for summaries over every channel and over 16 label channels (--topk-channels all,16,8
//         picks them; --no-topk skips top-k).
// topk (only with --only topk): that top-k decode part alone.
// quant (only with --only quant): quantized forward ('int8-fp8' and 'fp8' on sm_89+, 'int8') vs our
//         bf16 forward in the same run, d {128,64} x seq {4k,8k,16k} x causal, 16k tokens/batch,
//         2048/d heads (on sm_90 also the sm_80 kernel of each mode, as 'MODE@sm80'); and
//         fp8 / int8 KV-cache decode vs bf16 paged decode (32/8 heads, d128, page 16). --no-sm80 skips
//         the sm_80 variants; --dims / --seqs narrow the forward grid as for dense.
// quantkv (only with --only quantkv): that KV-cache decode part alone; quantfwd: the forward part alone.
// prefill (only with --only prefill): paged prefill of one sequence holding 16k tokens, its last 4k
//         or 16k as new query rows (32/8 heads, d128, bf16, causal), pages 16 and 64, dense and with
//         random 25% / 10% and radial block masks, vs our contiguous attention() on the same data and
//         masks (on sm_90 also vs the sm_80 contiguous kernel, the paged kernel's own, in a child
//         process with ATTN_CUDA_FORCE_SM80=1) and, dense, vs the decode kernel; then both paged
//         kernels over query rows 8..1024 (batch 1 and 8, 16k context) to place their crossover.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
const { Tensor, PagedKVCache, PagedLatentCache, BlockSparseMask, attention, pagedAttention, synchronize, cuda } = require(root);
const { benchAttention, defaultGrid } = require(path.join(root, 'dist', 'bench.js'));
const { native } = require(path.join(root, 'dist', 'native.js'));
const { hashedGrid } = require('./hashed-grid.js');

const args = process.argv.slice(2);
const outPath = args.find((a) => !a.startsWith('--')) || 'bench-attn.json';
const quick = args.includes('--quick');
const argOf = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const only = argOf('--only') ? new Set(argOf('--only').split(',')) : null;
const want = (name, byDefault) => (only ? only.has(name) : byDefault);
const listOf = (name) => (argOf(name) ? argOf(name).split(',').map(Number) : undefined);
const dims = listOf('--dims'); // dense: only these head dims
const headCounts = listOf('--heads'); // mla: only these head counts
const seqs = listOf('--seqs'); // dense: only these sequence lengths
const sweepSplits = listOf('--sweep-splits'); // decode: also time these split counts at batch <= 16
const noSm80 = args.includes('--no-sm80'); // quant: skip the 'MODE@sm80' variants on sm_90
const noTopk = args.includes('--no-topk'); // sparse: the block-sparse forward only
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

// Device ms per launch of native paged attention over (pool, table), timed by events: the median
// of `reps` bursts of 20 launches (one burst when the caller interleaves cases itself).
async function timeDecode(q, pool, table, out, rows, seqLens, numSplits = 0, reps = 5) {
  const params = { scale: 1 / Math.sqrt(DECODE.headDim), softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows, seqLens, numSplits };
  // Warm-up: one launch, then a timed burst that is thrown away (clocks ramp, caches fill).
  native.pagedAttention(q, pool, 0, table, out, null, params);
  native.pagedAttention(q, pool, 0, table, out, null, { ...params, benchIters: 20 });
  await synchronize(device);
  const times = [];
  for (let r = 0; r < reps; r++) times.push(native.pagedAttention(q, pool, 0, table, out, null, { ...params, benchIters: 20 }));
  return median(times);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function decodeResult(batch, context, pageSize, ms) {
  const { heads, kvHeads, headDim } = DECODE;
  const bytes = batch * context * kvHeads * headDim * 2 * 2; // K and V, bf16, each read once
  return { batch, context, pageSize, heads, kvHeads, headDim, ms, tbps: bytes / (ms * 1e-3) / 1e12 };
}

// A one-layer PagedKVCache (32/8 heads, d128, plus `cacheOptions`) holding `batch` sequences of
// `context` tokens (each the same random k, v [context, kvHeads, headDim]), written by the append
// kernel, with `queryRows` queries per sequence (default 1: decode) and their output.
function filledDecodeCache(batch, context, pageSize, cacheOptions, queryRows = 1) {
  const { heads, kvHeads, headDim } = DECODE;
  const cache = new PagedKVCache({
    layers: 1, kvHeads, headDim, pageSize, device, ...cacheOptions,
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
  const q = Tensor.randn([batch * queryRows, heads, headDim], { dtype: 'bf16', device });
  const out = Tensor.empty([batch * queryRows, heads, headDim], { dtype: 'bf16', device });
  const { rows, seqLens } = cache.batchInfo(seqs, 0, 'seqs');
  const dispose = () => {
    for (const t of [k, v, q, out]) t.dispose();
    cache.dispose();
  };
  return { cache, seqs, k, v, q, out, rows, seqLens, dispose };
}

// Through PagedKVCache: tokens appended by the append kernel, the cache's own block table.
function pagedSetup(batch, context, pageSize) {
  const { cache, q, out, rows, seqLens, dispose } = filledDecodeCache(batch, context, pageSize, { dtype: 'bf16' });
  return { pageSize, q, pool: cache.pool, table: cache.blockTable, out, rows, seqLens, dispose };
}

// The contiguous baseline: one page per sequence holding its whole context (page size = context).
function contiguousSetup(batch, context) {
  const { heads, kvHeads, headDim } = DECODE;
  const pool = Tensor.randn([1, 2, batch, kvHeads, context, headDim], { dtype: 'bf16', device });
  const table = Tensor.fromArray(Int32Array.from({ length: batch }, (_, b) => b), [batch, 1], { dtype: 'int32', device });
  const q = Tensor.randn([batch, heads, headDim], { dtype: 'bf16', device });
  const out = Tensor.empty([batch, heads, headDim], { dtype: 'bf16', device });
  const rows = Int32Array.from({ length: batch }, (_, b) => b);
  const seqLens = new Int32Array(batch).fill(context);
  return { pageSize: 'contiguous', q, pool, table, out, rows, seqLens, dispose: () => [pool, table, q, out].forEach((t) => t.dispose()) };
}

// The time to just read the case's K/V bytes once (cuda/timing/read_floor.h), timed like the
// decode: 'warm' reads the same bytes every launch (as the repeated decode calls do), 'cold' a
// fresh window each launch from a buffer several times the L2.
function readFloorCase(bytes) {
  const windows = Math.max(1, Math.ceil(256e6 / bytes));
  if (bytes * windows > 2e9) return null;
  const buf = Tensor.randn([(bytes * windows) / 2], { dtype: 'bf16', device });
  const warm = native.readFloor(buf, bytes, 1, 20);
  const cold = native.readFloor(buf, bytes, windows, 20 * windows);
  buf.dispose();
  return { warmMs: warm.ms, coldMs: cold.ms, warmTbps: bytes / (warm.ms * 1e-3) / 1e12, coldTbps: bytes / (cold.ms * 1e-3) / 1e12, grid: [warm.blocks, warm.threads] };
}

// Page 16, page 256 and contiguous, timed in interleaved rounds (one burst each per round, the
// order rotating) so that clock and thermal drift fall on all three alike.
async function decodeCells(batch, context) {
  const setups = [pagedSetup(batch, context, 16), pagedSetup(batch, context, 256), contiguousSetup(batch, context)];
  const times = setups.map(() => []);
  for (const s of setups) await timeDecode(s.q, s.pool, s.table, s.out, s.rows, s.seqLens, 0, 1);  // warm-up
  const rounds = 9;
  for (let r = 0; r < rounds; r++)
    for (let i = 0; i < setups.length; i++) {
      const j = (i + r) % setups.length;
      const s = setups[j];
      times[j].push(await timeDecode(s.q, s.pool, s.table, s.out, s.rows, s.seqLens, 0, 1));
    }
  const results = setups.map((s, j) => decodeResult(batch, context, s.pageSize, median(times[j])));
  const p16 = setups[0];
  if (sweepSplits && batch <= 16) {
    results[0].splits = {};
    for (const n of sweepSplits) results[0].splits[n] = await timeDecode(p16.q, p16.pool, p16.table, p16.out, p16.rows, p16.seqLens, n);
    process.stderr.write(`  splits (us): ${Object.entries(results[0].splits).map(([n, t]) => `${n}:${(t * 1000).toFixed(1)}`).join(' ')}\n`);
  }
  const bytes = batch * context * DECODE.kvHeads * DECODE.headDim * 2 * 2;
  if (bytes <= 600e6) {
    const floor = readFloorCase(bytes);
    if (floor) for (const r of results) r.readFloor = floor;
  }
  process.stderr.write(`  ${results.map((r) => `${r.pageSize}: ${(r.ms * 1000).toFixed(1)} us`).join(', ')}` +
    `${results[0].readFloor ? `; read floor warm ${(results[0].readFloor.warmMs * 1000).toFixed(1)} us, cold ${(results[0].readFloor.coldMs * 1000).toFixed(1)} us` : ''}\n`);
  for (const s of setups) s.dispose();
  return results;
}

async function decode() {
  const results = [];
  const batches = quick ? [1, 64] : [1, 16, 64, 128];
  const contexts = quick ? [8192] : [2048, 8192, 32768];
  for (const batch of batches)
    for (const context of contexts) {
      process.stderr.write(`decode batch ${batch} context ${context}\n`);
      results.push(...(await decodeCells(batch, context)));
    }
  return results;
}

// MLA decode (absorbed weights): the 576-wide latent rows of every token are read once per step.
const MLA = { batch: 64, pageSize: 64, scale: 1 / Math.sqrt(192) };

async function mlaCase(heads, context, dtype, kernel = 'auto') {
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
  const params = { scale: MLA.scale, softcap: 0, causal: true, rows: tableRows, seqLens, numSplits: 0, forceMma: kernel === 'mma' };
  const launch = (iters) => native.mlaAttention(q, cache.pool, cache.scales, 0, cache.blockTable, out, null, { ...params, benchIters: iters });
  native.mlaAttention(q, cache.pool, cache.scales, 0, cache.blockTable, out, null, params);
  launch(10); // warm-up burst, thrown away
  await synchronize(device);
  const times = [];
  for (let r = 0; r < 5; r++) times.push(launch(20));
  const ms = median(times);
  for (const t of [rows, q, out]) t.dispose();
  cache.dispose();
  const bytes = batch * context * (dtype === 'fp8e4m3' ? 576 + 8 : 576 * 2); // rows (and fp8 scales) read once
  const flops = 2 * (576 + 512) * heads * context * batch;
  return { batch, heads, context, dtype, kernel, pageSize, ms, tbps: bytes / (ms * 1e-3) / 1e12, tflops: flops / (ms * 1e-3) / 1e12 };
}

async function mla() {
  const results = [];
  for (const heads of headCounts || [16, 128])
    for (const context of quick ? [8192] : [4096, 8192, 16384, 32768])
      for (const dtype of ['bf16', 'fp8e4m3'])
        for (const kernel of dtype === 'fp8e4m3' || heads >= 32 ? ['auto', 'mma'] : ['auto']) {
          const r = await mlaCase(heads, context, dtype, kernel);
          process.stderr.write(
            `mla ${dtype} ${kernel} heads ${heads} context ${context}: ${(r.ms * 1000).toFixed(1)} us, ${r.tbps.toFixed(2)} TB/s, ${r.tflops.toFixed(0)} TFLOP/s\n`);
          results.push(r);
        }
  return results;
}

// ---- sparse: block-sparse forward and top-k decode (--only sparse) ----------------------------

// Median ms per call over `reps` timed bursts of ~50 ms (host timed: at 16k one call is milliseconds).
async function timeCalls(run, reps = 7) {
  run();
  await synchronize(device);
  let t0 = performance.now();
  run();
  await synchronize(device);
  const iters = Math.max(1, Math.min(200, Math.round(50 / Math.max(performance.now() - t0, 1e-3))));
  const times = [];
  for (let r = 0; r < reps; r++) {
    t0 = performance.now();
    for (let i = 0; i < iters; i++) run();
    await synchronize(device);
    times.push((performance.now() - t0) / iters);
  }
  return median(times);
}

async function sparseForward() {
  const S = 16384, H = 16, D = 128, B = 128;
  const nb = S / B;
  const shape = [1, S, H, D];
  const [q, k, v] = [0, 1, 2].map(() => Tensor.randn(shape, { dtype: 'bf16', device }));
  const out = Tensor.empty(shape, { dtype: 'bf16', device });
  const time = (blockMask) => timeCalls(() => attention(q, k, v, { out, returnLse: false, blockMask }));
  // The H100 runs these at its power cap, so its clock drifts with what ran before (dense first on
  // an idle GPU was up to 4% faster than dense between masks: docs/perf.md run 101). Dense is timed
  // before the first mask and after every mask, and each mask is compared with the mean of the two
  // dense timings around it.
  process.stderr.write('sparse forward: dense\n');
  const denseRuns = [await time(undefined)];
  const rows = [];
  const masks = [['all blocks', nb], ['hashed 50%', nb / 2], ['hashed 25%', nb / 4], ['hashed 10%', Math.round(nb / 10)]]
    .map(([name, count]) => [name, BlockSparseMask.fromDense(hashedGrid(nb, nb, count), { numQBlocks: nb, numKBlocks: nb }, { device })]);
  masks.push(['radial band 2', BlockSparseMask.radial({ seqLenQ: S, bandBlocks: 2, device })]);
  for (const [name, mask] of masks) {
    process.stderr.write(`sparse forward: ${name}, then dense\n`);
    const ms = await time(mask);
    denseRuns.push(await time(undefined));
    const denseAround = (denseRuns[denseRuns.length - 2] + denseRuns[denseRuns.length - 1]) / 2;
    rows.push({ mask: name, density: mask.density(), ms, denseAroundMs: denseAround, vsDenseScaled: ms / (mask.density() * denseAround) });
    mask.dispose();
  }
  rows.unshift({ mask: 'dense (no mask)', density: 1, ms: median(denseRuns), denseRunsMs: denseRuns });
  for (const t of [q, k, v, out]) t.dispose();
  return { seqLen: S, heads: H, headDim: D, batch: 1, dtype: 'bf16', rows };
}

// Top-k decode keeping round(pages / 8) pages; `channels` is the cache's pageSummaryChannels. Times
// (CUDA events, back-to-back launches): the whole call (scoring + selection + compaction + decode),
// and, from the same call, the selection kernel alone and the decode alone over the compacted table.
async function topKDecodeCase(batch, context, pageSize, channels) {
  const { heads, kvHeads, headDim } = DECODE;
  const { cache, q, out, rows, seqLens, dispose } = filledDecodeCache(batch, context, pageSize, { dtype: 'bf16', pageSummaries: true, pageSummaryChannels: channels });
  const pages = Math.ceil(context / pageSize);
  const topKPages = Math.max(2, Math.round(pages / 8));
  const fullMs = await timeDecode(q, cache.pool, cache.blockTable, out, rows, seqLens);
  const params = { scale: 1 / Math.sqrt(headDim), softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows, seqLens, numSplits: 0, topKPages, summaries: cache.summaries };
  if (cache.summaryChannels) params.summaryChannels = cache.summaryChannels;
  native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, { ...params, benchIters: 20, benchStages: true });
  await synchronize(device);
  const runs = [];
  for (let r = 0; r < 5; r++) runs.push(native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, { ...params, benchIters: 20, benchStages: true }));
  const [topKMs, selectMs, decodeMs] = [0, 1, 2].map((i) => median(runs.map((t) => t[i])));
  dispose();
  process.stderr.write(`  channels ${channels}: full ${(fullMs * 1000).toFixed(1)} us, top-k ${(topKMs * 1000).toFixed(1)} us `
    + `(select ${(selectMs * 1000).toFixed(1)}, decode ${(decodeMs * 1000).toFixed(1)}), ${(fullMs / topKMs).toFixed(2)}x\n`);
  return { batch, context, pageSize, channels, heads, kvHeads, headDim, pages, topKPages, fullMs, topKMs, selectMs, decodeMs, speedup: fullMs / topKMs };
}

async function sparse() {
  const forward = only && only.has('topk') ? null : await sparseForward();
  const decode = [];
  // --topk-channels all,16 (default): the cache's pageSummaryChannels values to run.
  const channelList = (argOf('--topk-channels') || 'all,16').split(',').map((c) => (c === 'all' ? 'all' : Number(c)));
  for (const batch of noTopk ? [] : quick ? [16] : [1, 16])
    for (const pageSize of [64, 16])
      for (const channels of channelList) {
        process.stderr.write(`top-k decode batch ${batch} page ${pageSize} channels ${channels}\n`);
        decode.push(await topKDecodeCase(batch, 32768, pageSize, channels));
      }
  return { forward, decode };
}

// ---- quant: quantized forward and quantized KV-cache decode ---------------------------------

// Median device ms of `call(iters)` (a benchIters hook returning ms per launch) over 5 bursts.
async function medianOf(call) {
  call(5);
  await synchronize(device);
  const ts = [];
  for (let r = 0; r < 5; r++) ts.push(call(20));
  return median(ts);
}

async function quantForward() {
  const { attention } = require(root);
  const sm = cuda.devices()[0].sm;
  const codes = { 'int8-fp8': 1, int8: 2, fp8: 3 };
  const modes = sm >= 89 ? ['int8-fp8', 'fp8', 'int8'] : ['int8'];
  // On Hopper the sm_90a kernel serves these; 'MODE@sm80' times the sm_80 kernel on the same GPU.
  const variants = modes.flatMap((m) => (sm === 90 && !noSm80 ? [m, `${m}@sm80`] : [m]));
  const results = [];
  for (const d of dims || [128, 64])
    for (const S of seqs || (quick ? [4096] : [4096, 8192, 16384]))
      for (const causal of [false, true]) {
        const B = Math.max(1, 16384 / S), H = 2048 / d;
        process.stderr.write(`quant forward d${d} seq ${S}${causal ? ' causal' : ''}\n`);
        const shape = [B, S, H, d];
        const q = Tensor.randn(shape, { dtype: 'bf16', device });
        const k = Tensor.randn(shape, { dtype: 'bf16', device });
        const v = Tensor.randn(shape, { dtype: 'bf16', device });
        const out = Tensor.empty(shape, { dtype: 'bf16', device });
        const flops = (4 * B * H * S * S * d) / (causal ? 2 : 1);
        const tflops = (ms) => flops / (ms * 1e-3) / 1e12;
        const row = { headDim: d, seqLen: S, batch: B, heads: H, causal, modes: {} };
        // Our bf16 forward, same run (wall clock over back-to-back calls, as benchAttention).
        const [bf16] = await benchAttention([{ batch: B, seqLen: S, heads: H, headDim: d, causal, dtype: 'bf16' }], { device });
        row.bf16 = { ms: bf16.ms, tflops: bf16.tflops };
        for (const variant of variants) {
          const [mode, kernel80] = variant.split('@');
          // CUDA-event timing through the binding hook: [with preprocessing, attention kernel alone].
          const params = { scale: 1 / Math.sqrt(d), softcap: 0, causal, windowLeft: -1, windowRight: causal ? 0 : -1, quantized: codes[mode], forceSm80: kernel80 !== undefined };
          const all = await medianOf((n) => native.attention(q, k, v, out, null, { ...params, benchIters: n })[0]);
          const kernel = await medianOf((n) => native.attention(q, k, v, out, null, { ...params, benchIters: n })[1]);
          // And the public API, wall clock (JS call, workspace allocation, preprocessing, kernel).
          let api = null;
          if (kernel80 === undefined) {
            const run = () => attention(q, k, v, { causal, out, quantized: mode, returnLse: false });
            run();
            await synchronize(device);
            const iters = 10;
            const t0 = performance.now();
            for (let i = 0; i < iters; i++) run();
            await synchronize(device);
            api = (performance.now() - t0) / iters;
          }
          row.modes[variant] = {
            msAll: all, msKernel: kernel, msApi: api, tflopsAll: tflops(all), tflopsKernel: tflops(kernel), tflopsApi: api && tflops(api),
            allVsBf16: bf16.ms / all, kernelVsBf16: bf16.ms / kernel,
          };
        }
        process.stderr.write(`  bf16 ${row.bf16.tflops.toFixed(0)} TFLOP/s; ${variants.map((m) => `${m} ${row.modes[m].tflopsAll.toFixed(0)} (kernel ${row.modes[m].tflopsKernel.toFixed(0)}, ${row.modes[m].kernelVsBf16.toFixed(2)}x bf16)`).join(', ')}\n`);
        results.push(row);
        for (const t of [q, k, v, out]) t.dispose();
      }
  return results;
}

// Paged decode over a cache of `dtype` (bf16, fp8, int8): batch sequences of `context` tokens.
async function quantDecodeCase(batch, context, dtype) {
  const { kvHeads, headDim } = DECODE;
  const pageSize = 16;
  const { cache, q, out, rows, seqLens, dispose } = filledDecodeCache(batch, context, pageSize, { dtype, computeDtype: 'bf16' });
  const params = { scale: 1 / Math.sqrt(headDim), softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows, seqLens, numSplits: 0 };
  const ms = await medianOf((n) => native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, { ...params, benchIters: n }, cache.scales, cache.kSmooth));
  // Bytes actually read: K and V once, plus one f32 scale per (token, kv head) each when quantized.
  const elem = dtype === 'bf16' ? 2 : 1;
  const bytes = batch * context * kvHeads * 2 * (headDim * elem + (elem === 1 ? 4 : 0));
  dispose();
  return { ms, tbps: bytes / (ms * 1e-3) / 1e12 };
}

async function quantDecode() {
  const results = [];
  const grid = quick ? [[64, 8192]] : [[64, 8192], [1, 2048], [1, 8192], [1, 32768], [16, 8192], [64, 2048], [64, 32768], [128, 8192]];
  for (const [batch, context] of grid) {
    process.stderr.write(`quant decode batch ${batch} context ${context}\n`);
    const row = { batch, context, heads: DECODE.heads, kvHeads: DECODE.kvHeads, headDim: DECODE.headDim, pageSize: 16 };
    for (const dtype of ['bf16', 'fp8', 'int8']) row[dtype] = await quantDecodeCase(batch, context, dtype);
    process.stderr.write(`  us: bf16 ${(row.bf16.ms * 1e3).toFixed(1)}, fp8 ${(row.fp8.ms * 1e3).toFixed(1)}, int8 ${(row.int8.ms * 1e3).toFixed(1)}\n`);
    results.push(row);
  }
  return results;
}
// ---- prefill: paged prefill on the flash kernel (--only prefill) -----------------------------

const PREFILL = { context: 16384, queryRows: [4096, 16384], pageSizes: [16, 64] };

// Key blocks query block i keeps in the random masks: every block holding its (bottom-right)
// diagonal, and a scattered `fraction` of the blocks below it; nothing above it (causal).
function randomCausalGrid(nq, nk, fraction) {
  const nQ = Math.ceil(nq / 128), nK = Math.ceil(nk / 128), offset = nk - nq;
  const g = new Uint8Array(nQ * nK);
  for (let i = 0; i < nQ; i++) {
    const lo = Math.floor((i * 128 + offset) / 128), hi = Math.floor((Math.min(i * 128 + 128, nq) - 1 + offset) / 128);
    for (let c = 0; c <= Math.min(hi, nK - 1); c++) g[i * nK + c] = c >= lo || (37 * c + 11 * i) % 100 < fraction * 100 ? 1 : 0;
  }
  return g;
}

// (query, key) pairs a causal (bottom-right) call visits, only in the listed blocks of `grid` when
// given; FLOPs = 4 * heads * headDim * pairs. Also the pairs of the dense causal call.
function visiblePairs(nq, nk, grid) {
  const nK = Math.ceil(nk / 128), offset = nk - nq;
  let pairs = 0, dense = 0;
  for (let i = 0; i < nq; i++) {
    const end = Math.min(nk, i + offset + 1);  // keys [0, end)
    dense += end;
    if (!grid) continue;
    const row = Math.floor(i / 128) * nK;
    for (let c = 0; c * 128 < end; c++) if (grid[row + c]) pairs += Math.min(end, c * 128 + 128) - c * 128;
  }
  return { pairs: grid ? pairs : dense, dense };
}

// The masks of one query run: [name, grid or null]; the radial one comes from the library's builder.
function prefillMasks(nq, nk) {
  const radial = BlockSparseMask.radial({ seqLenQ: nq, seqLenK: nk, bandBlocks: 2, causal: true });
  const masks = [['dense', null], ['random 25%', randomCausalGrid(nq, nk, 0.25)], ['random 10%', randomCausalGrid(nq, nk, 0.1)], ['radial band 2', radial.toDense()]];
  radial.dispose();
  return masks;
}

// Contiguous attention() on the cache's own k/v (one sequence), every prefill case: ms per call.
async function contiguousPrefillTimes(k, v) {
  const { heads, headDim } = DECODE;
  const { context } = PREFILL;
  const times = {};
  for (const nq of PREFILL.queryRows) {
    const q = Tensor.randn([1, nq, heads, headDim], { dtype: 'bf16', device });
    const out = Tensor.empty([1, nq, heads, headDim], { dtype: 'bf16', device });
    const k4 = k.reshape([1, context, DECODE.kvHeads, headDim]);
    const v4 = v.reshape([1, context, DECODE.kvHeads, headDim]);
    for (const [name, grid] of prefillMasks(nq, context)) {
      const blockMask = grid ? BlockSparseMask.fromDense(grid, { numQBlocks: nq / 128, numKBlocks: context / 128 }, { device }) : undefined;
      times[`${nq}/${name}`] = await timeCalls(() => attention(q, k4, v4, { causal: true, out, returnLse: false, blockMask }));
      blockMask?.dispose();
    }
    for (const t of [q, out]) t.dispose();
  }
  return times;
}

// The child process of prefill() on sm_90: the same contiguous calls on the sm_80 kernel.
async function prefillSm80Child() {
  const { context } = PREFILL;
  const k = Tensor.randn([context, DECODE.kvHeads, DECODE.headDim], { dtype: 'bf16', device });
  const v = Tensor.randn([context, DECODE.kvHeads, DECODE.headDim], { dtype: 'bf16', device });
  const times = await contiguousPrefillTimes(k, v);
  k.dispose();
  v.dispose();
  return times;
}

async function prefill() {
  const { heads, kvHeads, headDim } = DECODE;
  const { context } = PREFILL;
  const sm = cuda.devices()[0].sm;
  const forcedSm80 = !!process.env.ATTN_CUDA_FORCE_SM80 && process.env.ATTN_CUDA_FORCE_SM80 !== '0';
  const contiguousKernel = sm === 90 && !forcedSm80 ? 'sm90a' : 'sm80';  // (d128 masks run on sm90a too)
  let sm80 = null;
  if (sm === 90 && !forcedSm80) {
    process.stderr.write('prefill: contiguous attention() on the sm_80 kernel (child process)\n');
    const tmp = path.join(require('node:os').tmpdir(), `prefill-sm80-${process.pid}.json`);
    const child = spawnSync(process.execPath, [__filename, tmp, '--only', 'prefill-sm80-child'], {
      env: { ...process.env, ATTN_CUDA_FORCE_SM80: '1' }, stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (child.status === 0) sm80 = JSON.parse(fs.readFileSync(tmp, 'utf8')).prefillSm80;
    fs.rmSync(tmp, { force: true });
  }
  const rows = [];
  let contiguous = null;
  for (const pageSize of PREFILL.pageSizes)
    for (const nq of PREFILL.queryRows) {
      const { cache, seqs, k, v, q, out, rows: tableRows, seqLens, dispose } = filledDecodeCache(1, context, pageSize, { dtype: 'bf16' }, nq);
      if (!contiguous) contiguous = await contiguousPrefillTimes(k, v);  // the same k, v for every page size
      for (const [name, grid] of prefillMasks(nq, context)) {
        process.stderr.write(`prefill page ${pageSize} rows ${nq}: ${name}\n`);
        const blockMask = grid ? BlockSparseMask.fromDense(grid, { numQBlocks: nq / 128, numKBlocks: context / 128 }, { device }) : undefined;
        const ms = await timeCalls(() => pagedAttention(q, cache, 0, seqs, { queryCounts: [nq], out, returnLse: false, blockMask }));
        blockMask?.dispose();
        const { pairs, dense } = visiblePairs(nq, context, grid);
        const flops = 4 * heads * headDim * pairs;
        const tflops = (t) => (t ? flops / (t * 1e-3) / 1e12 : null);
        const row = { queryRows: nq, pageSize, mask: name, causalFraction: pairs / dense, ms, tflops: tflops(ms) };
        const c = contiguous[`${nq}/${name}`];
        Object.assign(row, { contiguousMs: c, contiguousTflops: tflops(c), pagedVsContiguous: c / ms });
        if (sm80 && sm80[`${nq}/${name}`]) Object.assign(row, { contiguousSm80Ms: sm80[`${nq}/${name}`], pagedVsContiguousSm80: sm80[`${nq}/${name}`] / ms });
        if (!grid) {
          // The same prefill on the decode kernel (what pagedAttention ran before the prefill kernel).
          const params = { scale: 1 / Math.sqrt(headDim), softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows: tableRows, seqLens, numSplits: 0, cuSeqlensQ: Int32Array.from([0, nq]), pagedKernel: 1 };
          row.decodeKernelMs = await timeCalls(() => native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, params), 3);
          row.prefillVsDecodeKernel = row.decodeKernelMs / ms;
        }
        process.stderr.write(`  ${ms.toFixed(3)} ms, ${row.tflops.toFixed(0)} TFLOP/s; contiguous ${c.toFixed(3)} ms (paged/contiguous time ${(ms / c).toFixed(2)})` +
          `${row.contiguousSm80Ms ? `, sm80 contiguous ${row.contiguousSm80Ms.toFixed(3)} ms` : ''}${row.decodeKernelMs ? `, decode kernel ${row.decodeKernelMs.toFixed(2)} ms` : ''}\n`);
        rows.push(row);
      }
      dispose();
    }

  // Crossover: both kernels on short prefills (CUDA events, no host overhead), 16k context, page 16.
  const crossover = [];
  for (const batch of quick ? [1] : [1, 8])
    for (const nq of quick ? [32, 64, 128] : [8, 16, 32, 48, 64, 96, 128, 256, 512, 1024]) {
      const { cache, q, out, rows: tableRows, seqLens, dispose } = filledDecodeCache(batch, context, 16, { dtype: 'bf16' }, nq);
      const cu = Int32Array.from({ length: batch + 1 }, (_, b) => b * nq);
      const params = { scale: 1 / Math.sqrt(headDim), softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows: tableRows, seqLens, numSplits: 0, cuSeqlensQ: cu };
      const time = (pagedKernel) => medianOf((n) => native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, { ...params, pagedKernel, benchIters: n }));
      const decodeMs = await time(1), prefillMs = await time(2), defaultMs = await time(0);
      process.stderr.write(`crossover batch ${batch} rows ${nq}: decode kernel ${(decodeMs * 1e3).toFixed(1)} us, prefill kernel ${(prefillMs * 1e3).toFixed(1)} us\n`);
      // The default pick, by its time (the two kernels differ by far more than the timing noise).
      const chosen = Math.abs(defaultMs - prefillMs) < Math.abs(defaultMs - decodeMs) ? 'prefill' : 'decode';
      crossover.push({ batch, queryRows: nq, decodeMs, prefillMs, defaultMs, chosen });
      dispose();
    }
  return { context, heads, kvHeads, headDim, dtype: 'bf16', causal: true, contiguousKernel, rows, crossover };
}

(async () => {
  const result = { device: cuda.devices()[0], date: new Date().toISOString() };
  if (want('dense', true)) result.dense = await dense();
  if (want('decode', true)) result.decode = await decode();
  if (want('mla', false)) result.mla = await mla();
  if (want('sparse', false) || want('topk', false)) result.sparse = await sparse();
  if (want('quant', false)) result.quant = { forward: await quantForward(), decode: await quantDecode() };
  else if (want('quantfwd', false)) result.quant = { forward: await quantForward() };
  else if (want('quantkv', false)) result.quant = { decode: await quantDecode() };
  if (want('prefill', false)) result.prefill = await prefill();
  if (want('prefill-sm80-child', false)) result.prefillSm80 = await prefillSm80Child();
  fs.writeFileSync(outPath, JSON.stringify(result, null, 2));
  console.error(`wrote ${outPath}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
