// Dense attention on the CPU backend: GFLOP/s of attention() + toArray(), best of --reps runs.
//   node scripts/cpu-attention.js [--seqs 1024,4096] [--heads 8] [--dim 128] [--reps 4]
// Used for the CPU rows of docs/perf.md (f32, batch 1, non-causal and causal).
'use strict';
const path = require('node:path');
const { attention, Tensor } = require(path.join(__dirname, '..'));

const argOf = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const seqs = argOf('--seqs', '1024,4096').split(',').map(Number);
const heads = Number(argOf('--heads', '8'));
const dim = Number(argOf('--dim', '128'));
const reps = Number(argOf('--reps', '4'));

(async () => {
  for (const seq of seqs) {
    const [q, k, v] = [0, 1, 2].map(() => Tensor.randn([1, seq, heads, dim], { dtype: 'f32', device: 'cpu' }));
    for (const causal of [false, true]) {
      let best = Infinity;
      for (let r = 0; r < reps; ++r) {
        const t0 = process.hrtime.bigint();
        await attention(q, k, v, { causal }).out.toArray();
        best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
      }
      const flops = (4 * seq * seq * heads * dim) / (causal ? 2 : 1);
      console.log(`seq ${seq} heads ${heads} d${dim}${causal ? ' causal' : ''}: ${best.toFixed(1)} ms, ${(flops / best / 1e6).toFixed(1)} GFLOP/s`);
    }
  }
})();
