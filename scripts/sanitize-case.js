// A small run of every CUDA kernel for compute-sanitizer (memcheck, racecheck): odd lengths so
// the boundary paths run, causal + window, varlen, GQA, paged decode with splits, paged prefill
// (dense and block-sparse), append, fork.
'use strict';
const path = require('node:path');
const { attention, BlockSparseMask, Tensor, PagedKVCache, pagedAttention, synchronize, PagedLatentCache, mlaDecode, cuda } = require(path.join(__dirname, '..'));

(async () => {
  const device = 'cuda:0';
  for (const d of [64, 128, 256]) {
    const q = Tensor.randn([1, 77, 4, d], { dtype: 'bf16', device });
    const k = Tensor.randn([1, 130, 2, d], { dtype: 'bf16', device });
    const v = Tensor.randn([1, 130, 2, d], { dtype: 'bf16', device });
    attention(q, k, v, { causal: true });
    attention(q, k, v, { window: [20, 5], softcap: 10 });
    const tq = Tensor.randn([90, 4, d], { dtype: 'f16', device });
    const tk = Tensor.randn([100, 2, d], { dtype: 'f16', device });
    attention(tq, tk, tk, { cuSeqlensQ: [0, 13, 90], cuSeqlensK: [0, 40, 100], causal: true });
    const cache = new PagedKVCache({ layers: 1, kvHeads: 2, headDim: d, pageSize: 16, capacityPages: 64, dtype: 'bf16', device });
    const a = cache.addSequence();
    cache.append(a, 0, Tensor.randn([300, 2, d], { dtype: 'bf16', device }), Tensor.randn([300, 2, d], { dtype: 'bf16', device }));
    const b = cache.fork(a);
    cache.append([a, b], 0, Tensor.randn([7, 2, d], { dtype: 'bf16', device }), Tensor.randn([7, 2, d], { dtype: 'bf16', device }), [3, 4]);
    pagedAttention(Tensor.randn([2, 8, d], { dtype: 'bf16', device }), cache, 0, [a, b], { numSplits: 4 });
    // More splits than a cluster holds: the fused combine through the workspace, empty splits too.
    pagedAttention(Tensor.randn([2, 8, d], { dtype: 'bf16', device }), cache, 0, [a, b], { numSplits: 20 });
    pagedAttention(Tensor.randn([2, 8, d], { dtype: 'bf16', device }), cache, 0, [a, b], { numSplits: 1 });
    pagedAttention(Tensor.randn([5, 8, d], { dtype: 'bf16', device }), cache, 0, [a, b], { queryCounts: [2, 3] });
    // Paged prefill on the flash kernel: odd query runs across page boundaries, dense and masked.
    pagedAttention(Tensor.randn([230, 8, d], { dtype: 'bf16', device }), cache, 0, [a, b], { queryCounts: [150, 80], window: [100, -1] });
    const pmask = BlockSparseMask.fromDense([1, 0, 1, 0, 1, 1], { numQBlocks: 2, numKBlocks: 3 }, { device });
    pagedAttention(Tensor.randn([230, 8, d], { dtype: 'bf16', device }), cache, 0, [a, b], { queryCounts: [150, 80], blockMask: pmask });
    // Block-sparse forward (one key block of two listed) and top-k decode over page summaries.
    const mask = BlockSparseMask.fromDense([1, 0], { numQBlocks: 1, numKBlocks: 2 }, { device });
    attention(q, k, v, { causal: true, blockMask: mask });
    // Quantized forward (on Hopper: the sm_90a kernel, TMA + wgmma), dense causal and varlen window.
    if (d !== 256) {
      for (const quantized of cuda.devices()[0].sm >= 89 ? ['int8', 'int8-fp8', 'fp8'] : ['int8']) {
        attention(q, k, v, { causal: true, quantized });
        attention(tq, tk, tk, { cuSeqlensQ: [0, 13, 90], cuSeqlensK: [0, 40, 100], window: [30, 3], quantized });
      }
    }
    const sc = new PagedKVCache({ layers: 1, kvHeads: 2, headDim: d, pageSize: 16, capacityPages: 64, dtype: 'bf16', device, pageSummaries: true });
    const c = sc.addSequence();
    sc.append(c, 0, Tensor.randn([300, 2, d], { dtype: 'bf16', device }), Tensor.randn([300, 2, d], { dtype: 'bf16', device }));
    const e = sc.fork(c);
    sc.append([c, e], 0, Tensor.randn([7, 2, d], { dtype: 'bf16', device }), Tensor.randn([7, 2, d], { dtype: 'bf16', device }), [3, 4]);
    pagedAttention(Tensor.randn([2, 8, d], { dtype: 'bf16', device }), sc, 0, [c, e], { topK: { pages: 5 }, numSplits: 2 });
    // Label-channel summaries: the first append chooses the channels, then scoring over them.
    const lc = new PagedKVCache({ layers: 1, kvHeads: 2, headDim: d, pageSize: 16, capacityPages: 64, dtype: 'bf16', device, pageSummaries: true, pageSummaryChannels: 16 });
    const f = lc.addSequence();
    lc.append(f, 0, Tensor.randn([600, 2, d], { dtype: 'bf16', device }), Tensor.randn([600, 2, d], { dtype: 'bf16', device }));
    pagedAttention(Tensor.randn([1, 8, d], { dtype: 'bf16', device }), lc, 0, [f], { topK: { pages: 7 } });
    // Quantized KV caches: decode with fused and separate split combines, prefill.
    for (const dtype of ['fp8', 'int8']) {
      const qc = new PagedKVCache({ layers: 1, kvHeads: 2, headDim: d, pageSize: 16, capacityPages: 64, dtype, computeDtype: 'bf16', device });
      const s0 = qc.addSequence();
      qc.append(s0, 0, Tensor.randn([300, 2, d], { dtype: 'bf16', device }), Tensor.randn([300, 2, d], { dtype: 'bf16', device }));
      const s1 = qc.fork(s0);
      qc.append([s0, s1], 0, Tensor.randn([7, 2, d], { dtype: 'bf16', device }), Tensor.randn([7, 2, d], { dtype: 'bf16', device }), [3, 4]);
      for (const numSplits of [1, 4, 70]) pagedAttention(Tensor.randn([2, 8, d], { dtype: 'bf16', device }), qc, 0, [s0, s1], { numSplits });
      pagedAttention(Tensor.randn([5, 8, d], { dtype: 'bf16', device }), qc, 0, [s0, s1], { queryCounts: [2, 3], softcap: 20 });
    }
    await synchronize(device);
  }
  // MLA: both CTA shapes (16 and 128 heads), bf16 and fp8 caches, splits, prefill, fork.
  for (const dtype of ['bf16', 'fp8e4m3']) {
    const cache = new PagedLatentCache({ layers: 1, pageSize: 16, capacityPages: 64, dtype, device });
    const a = cache.addSequence();
    cache.append(a, 0, Tensor.randn([300, 576], { dtype: 'bf16', device }));
    const b = cache.fork(a);
    cache.append([a, b], 0, Tensor.randn([7, 512], { dtype: 'bf16', device }), Tensor.randn([7, 64], { dtype: 'bf16', device }), [3, 4]);
    for (const heads of [16, 128]) {
      mlaDecode(Tensor.randn([2, heads, 576], { dtype: 'bf16', device }), cache, 0, [a, b], { scale: 0.07, numSplits: 4 });
      mlaDecode(Tensor.randn([2, heads, 576], { dtype: 'bf16', device }), cache, 0, [a, b], { scale: 0.07, numSplits: 1 });
      mlaDecode(Tensor.randn([5, heads, 576], { dtype: 'bf16', device }), cache, 0, [a, b], { scale: 0.07, queryCounts: [2, 3] });
    }
    await synchronize(device);
  }
  console.log('sanitize case done');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
