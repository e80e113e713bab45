// Runs inside the project scripts/pack-check.js installs the packed tarball into: the package as a
// user gets it. Proves the prebuilt binary is the one loaded and that CPU results are right.
'use strict';
const path = require('node:path');
const binary = require('node-gyp-build').path(path.dirname(require.resolve('attn-cuda/package.json')));
if (!binary.includes(path.sep + 'prebuilds' + path.sep)) throw new Error('loaded ' + binary + ', not a prebuilt binary');
const { attention, Tensor, PagedKVCache, pagedAttention } = require('attn-cuda');

// Plain float64 attention of one sequence, q [Lq, H, D], k/v [Lk, Hkv, D], bottom-right causal.
function reference(q, k, v, Lq, Lk, H, Hkv, D, causal) {
  const out = new Float64Array(Lq * H * D);
  for (let h = 0; h < H; h++) for (let i = 0; i < Lq; i++) {
    const kh = Math.floor(h / (H / Hkv)), last = causal ? i + Lk - Lq : Lk - 1;
    const s = [];
    for (let j = 0; j <= last; j++) {
      let dot = 0;
      for (let c = 0; c < D; c++) dot += q[(i * H + h) * D + c] * k[(j * Hkv + kh) * D + c];
      s.push(dot / Math.sqrt(D));
    }
    const m = Math.max(...s), e = s.map((x) => Math.exp(x - m)), z = e.reduce((a, b) => a + b, 0);
    for (let j = 0; j <= last; j++) for (let c = 0; c < D; c++) out[(i * H + h) * D + c] += (e[j] / z) * v[(j * Hkv + kh) * D + c];
  }
  return out;
}
const relL2 = (a, b) => Math.sqrt(a.reduce((s, x, i) => s + (x - b[i]) ** 2, 0) / b.reduce((s, x) => s + x * x, 0));

(async () => {
  const [Lq, Lk, H, Hkv, D] = [17, 29, 4, 2, 64];
  const q = Tensor.randn([1, Lq, H, D]), k = Tensor.randn([1, Lk, Hkv, D]), v = Tensor.randn([1, Lk, Hkv, D]);
  const [qh, kh, vh] = await Promise.all([q.toArray(), k.toArray(), v.toArray()]);
  for (const causal of [false, true]) {
    const got = await attention(q, k, v, { causal }).out.toArray();
    const err = relL2(Array.from(got), reference(qh, kh, vh, Lq, Lk, H, Hkv, D, causal));
    if (!(err < 1e-5)) throw new Error('attention causal=' + causal + ' rel. L2 error ' + err);
  }
  const cache = new PagedKVCache({ layers: 1, kvHeads: Hkv, headDim: D, pageSize: 8, capacityPages: 16 });
  const seq = cache.addSequence();
  cache.append(seq, 0, k.reshape([Lk, Hkv, D]), v.reshape([Lk, Hkv, D]));
  const q1 = q.narrow(1, Lq - 1, 1).contiguous().reshape([1, H, D]);
  const got = await pagedAttention(q1, cache, 0, [seq]).out.toArray();
  const ref = reference(qh.slice((Lq - 1) * H * D), kh, vh, 1, Lk, H, Hkv, D, true);
  const err = relL2(Array.from(got), ref);
  if (!(err < 1e-5)) throw new Error('paged decode rel. L2 error ' + err);
  console.log('smoke: prebuilt ' + path.basename(binary) + ' loaded; CPU attention and paged decode match float64');
})().catch((e) => { console.error(e); process.exit(1); });
