#!/usr/bin/env node
// attn-cuda's half of the cross-check against PyTorch SDPA (scripts/cross_check_torch.py does the
// other half): runs CUDA attention on fresh random bf16 inputs and writes inputs, output and lse
// as float32 files plus a manifest, so torch can compare both against a float64 reference.
//   node scripts/cross-check.js DIR
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { attention, Tensor } = require(path.join(__dirname, '..'));

const dir = process.argv[2] || 'xcheck';
fs.mkdirSync(dir, { recursive: true });
const device = 'cuda:0';
// [name, batch, lenQ, lenK, headsQ, headsKv, dim, options]
const cases = [];
for (const d of [64, 128, 256]) {
  cases.push([`d${d}-gqa-causal`, 2, 1000, 1000, 8, 2, d, { causal: true }]);
  cases.push([`d${d}-q-shorter-causal`, 1, 257, 1031, 4, 4, d, { causal: true }]);
  cases.push([`d${d}-odd-plain`, 3, 777, 777, 4, 1, d, {}]);
  cases.push([`d${d}-window`, 1, 600, 600, 4, 2, d, { window: [128, 16] }]);
}

(async () => {
  const manifest = [];
  for (const [name, batch, lq, lk, hq, hkv, dim, options] of cases) {
    const q = Tensor.randn([batch, lq, hq, dim], { dtype: 'bf16', device });
    const k = Tensor.randn([batch, lk, hkv, dim], { dtype: 'bf16', device });
    const v = Tensor.randn([batch, lk, hkv, dim], { dtype: 'bf16', device });
    const out = Tensor.full(q.shape, NaN, { dtype: 'bf16', device });
    const { lse } = attention(q, k, v, { ...options, out });
    for (const [tag, t] of [['q', q], ['k', k], ['v', v], ['out', out], ['lse', lse]]) {
      const data = Float32Array.from(await t.toArray());
      fs.writeFileSync(path.join(dir, `${name}.${tag}.f32`), Buffer.from(data.buffer));
      t.dispose();
    }
    manifest.push({ name, batch, lq, lk, hq, hkv, dim, options });
  }
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  console.error(`cross-check: wrote ${manifest.length} cases to ${dir}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
