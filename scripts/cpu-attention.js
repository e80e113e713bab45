// Attention on the CPU backend, best of --reps runs: dense attention() + toArray() in GFLOP/s by default.
//   node scripts/cpu-attention.js [--seqs 1024,4096] [--heads 8] [--dim 128] [--reps 4] [--paged | --decode | --mla]
// Used for the CPU rows of docs/perf.md (f32, batch 1, non-causal and causal). --paged instead
// times pagedAttention() prefill: the last seq / 4 tokens of a sequence in a PagedKVCache (page 16,
// heads / 4 kv heads) as causal queries over all seq of them. --decode times one decode step
// (one query per sequence) of batch 1 and 8 over seq cached tokens each, f32 and bf16 caches
// (page 16, heads / 4 kv heads), as GB/s of K/V read. --mla times mlaDecode() (batch 1 and 4, 16
// and 128 heads, bf16 latent cache, page 64) over seq cached tokens each.
'use strict';
const path = require('node:path');
const { attention, mlaDecode, pagedAttention, PagedKVCache, PagedLatentCache, Tensor } = require(path.join(__dirname, '..'));

const argOf = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const seqs = argOf('--seqs', '1024,4096').split(',').map(Number);
const heads = Number(argOf('--heads', '8'));
const dim = Number(argOf('--dim', '128'));
const reps = Number(argOf('--reps', '4'));
const paged = process.argv.includes('--paged');
const decode = process.argv.includes('--decode');
const mla = process.argv.includes('--mla');

async function best(run) {
  let ms = Infinity;
  for (let r = 0; r < reps; ++r) {
    const t0 = process.hrtime.bigint();
    await run();
    ms = Math.min(ms, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return ms;
}

async function pagedPrefill(seq) {
  const kvHeads = Math.max(1, heads / 4), nq = seq / 4;
  const cache = new PagedKVCache({ layers: 1, kvHeads, headDim: dim, pageSize: 16, capacityPages: Math.ceil(seq / 16), dtype: 'f32', device: 'cpu' });
  const s = cache.addSequence();
  cache.append(s, 0, Tensor.randn([seq, kvHeads, dim]), Tensor.randn([seq, kvHeads, dim]));
  const q = Tensor.randn([nq, heads, dim]);
  const ms = await best(() => pagedAttention(q, cache, 0, [s], { queryCounts: [nq] }).out.toArray());
  const pairs = nq * (seq - nq) + (nq * (nq + 1)) / 2;
  console.log(`paged prefill ${nq} rows over ${seq}, heads ${heads}/${kvHeads} d${dim}: ${ms.toFixed(1)} ms, ${((4 * pairs * heads * dim) / ms / 1e6).toFixed(1)} GFLOP/s`);
}

async function pagedDecode(seq) {
  const kvHeads = Math.max(1, heads / 4);
  for (const dtype of ['f32', 'bf16'])
    for (const batch of [1, 8]) {
      const cache = new PagedKVCache({ layers: 1, kvHeads, headDim: dim, pageSize: 16, capacityPages: batch * Math.ceil(seq / 16), maxSequences: batch, dtype, device: 'cpu' });
      const seqIds = [];
      for (let b = 0; b < batch; ++b) {
        const s = cache.addSequence();
        cache.append(s, 0, Tensor.randn([seq, kvHeads, dim], { dtype }), Tensor.randn([seq, kvHeads, dim], { dtype }));
        seqIds.push(s);
      }
      const q = Tensor.randn([batch, heads, dim], { dtype });
      const ms = await best(() => pagedAttention(q, cache, 0, seqIds).out.toArray());
      const bytes = 2 * batch * seq * kvHeads * dim * (dtype === 'f32' ? 4 : 2);
      console.log(`paged decode ${dtype} ${batch} x ${seq}, heads ${heads}/${kvHeads} d${dim}: ${ms.toFixed(2)} ms, ${(bytes / ms / 1e6).toFixed(1)} GB/s`);
      cache.dispose();
    }
}

async function mlaCpu(seq) {
  for (const mlaHeads of [16, 128])
    for (const batch of [1, 4]) {
      const cache = new PagedLatentCache({ layers: 1, pageSize: 64, dtype: 'bf16', device: 'cpu', capacityPages: batch * Math.ceil(seq / 64), maxSequences: batch, maxSequenceLength: seq });
      const seqIds = [];
      for (let b = 0; b < batch; ++b) {
        const s = cache.addSequence();
        cache.append(s, 0, Tensor.randn([seq, 576], { dtype: 'bf16' }));
        seqIds.push(s);
      }
      const q = Tensor.randn([batch, mlaHeads, 576], { dtype: 'bf16' });
      const ms = await best(() => mlaDecode(q, cache, 0, seqIds, { scale: 1 / Math.sqrt(192) }).out.toArray());
      const flops = 2 * (576 + 512) * mlaHeads * seq * batch;
      console.log(`mla decode ${batch} x ${seq}, ${mlaHeads} heads: ${ms.toFixed(2)} ms, ${(flops / ms / 1e6).toFixed(1)} GFLOP/s`);
      cache.dispose();
    }
}

(async () => {
  for (const seq of seqs) {
    if (mla) {
      await mlaCpu(seq);
      continue;
    }
    if (decode) {
      await pagedDecode(seq);
      continue;
    }
    if (paged) {
      await pagedPrefill(seq);
      continue;
    }
    const [q, k, v] = [0, 1, 2].map(() => Tensor.randn([1, seq, heads, dim], { dtype: 'f32', device: 'cpu' }));
    for (const causal of [false, true]) {
      const ms = await best(() => attention(q, k, v, { causal }).out.toArray());
      const flops = (4 * seq * seq * heads * dim) / (causal ? 2 : 1);
      console.log(`seq ${seq} heads ${heads} d${dim}${causal ? ' causal' : ''}: ${ms.toFixed(1)} ms, ${(flops / ms / 1e6).toFixed(1)} GFLOP/s`);
    }
  }
})();
