#!/usr/bin/env node
// Accuracy survey of the quantized attention modes on the CPU backend (the CPU emulates the CUDA
// kernels' rounding, csrc/cpu/quant_attention.cpp): for every mode x head dim x input kind x
// causal, N fresh random draws, each scored against a float64 attention computed here on the same
// bf16-rounded inputs. The tests (test/quant.cpu.test.ts) check a few draws against an envelope;
// this prints the distribution, so a tail is visible as a rate instead of a rare CI failure.
//
//   node scripts/quant-accuracy.js [--draws N] [--modes int8,int8-fp8,fp8] [--dims 64,128]
//        [--kinds normal,heavy,tests,apart] [--seq 512] [--heads 4] [--seed 1] [--json out.json]
//        [--emulate-per-key-k] [--emulate-outliers 4,8,16] [--emulate-hadamard] [--emulate-q-smoothing]
//
// Contract (README, test/helpers/quant.ts): relative L2 <= 3e-2 and cosine >= 0.999 on the whole
// output of a call. 'over' is the share of draws that miss either bound.
//
// Input kinds (batch 1, heads q = kv; V N(0, 1) except in 'tests', so mostly Q.K and the P/V rounding are probed):
//   normal  Q, K ~ N(0, 1).
//   heavy   4 outlier channels, shared by Q and K, scaled x10..x20 in both, plus a per-channel
//           offset U(-20, 20) in K (the offset is what the K smoothing removes; the outlier
//           channels set the int8 scales and so coarsen every other channel).
//   tests   test/helpers/quant.ts's 'heavy' inputs (V heavy-tailed too): Q 2 channels x4, K +20 with 4
//           outlier channels offset +-10..50 then x2, V's 4 outlier channels x10..50.
//   apart   Q and K with per-channel means of opposite sign (|mean| U(2, 6), random sign) plus
//           N(0, 1): after smoothing, Q's large mean sets its per-token scale and the scores are
//           dominated by mean(Q) . K, peaked over keys.
// The same draw feeds every mode and both causal settings, so the modes are compared pairwise.
//
// --emulate-per-key-k adds two rows per (dim, kind, causal) that are NOT what the library runs:
// float64 JS emulations of the Q.K quantization alone (int8 Q with one scale per token and head,
// as the library; K smoothed by its mean over keys, then int8; the integer dot dequantized
// exactly; softmax, P and V left in float64):
//   emu-k64   K with one scale per 64-key block, as the library: the control, showing how much of
//             the 'int8' mode's error comes from Q.K (its f16 P.V adds little).
//   emu-k1    K with one scale per key (per row), the candidate fix for the int8 heavy tail.
// --emulate-outliers N,... adds a row per N (also float64 emulations, also not what the library runs):
//   emu-outN  per head, the N channels with the largest max|q_c| * max|k_c| (K smoothed) left out of
//             the int8 quantization and multiplied exactly (as a 16-bit k16 MMA beside the int8 one
//             would), the other channels int8 as the library (Q per token, K per 64 keys, their
//             scales from those channels alone).
//   emu-koutN the same with the N channels of largest variance of the smoothed K (K alone: what the
//             preprocessing's K statistics already see).
// --emulate-hadamard adds a row (a float64 emulation, not what the library runs):
//   emu-had   Q and the smoothed K each multiplied by one random-sign Hadamard matrix H D / sqrt(D)
//             over the head dim before the library's int8 rounding (Q per token, K per 64 keys);
//             orthogonal, so (Q H)(K H)^T = Q K^T, but it spreads outlier channels over all
//             channels, so the int8 scales stop being set by a few of them ('incoherent
//             processing', as FlashAttention-3's FP8 path and QuaRot rotate).
// --emulate-q-smoothing adds emu-had and (a float64 emulation, not what the library runs):
//   emu-hadqs emu-had with Q smoothed first (SageAttention2): each block of 128 query rows minus its
//             mean per channel, the int8 dot of the rest plus the exact (block mean) . (smoothed k),
//             a term the kernel would add per (query block, key).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { attention, Tensor } = require(path.join(__dirname, '..'));

const REL_MAX = 3e-2;
const COS_MIN = 0.999;
const KEY_BLOCK = 64; // keys per K scale in the library (kQuantKeyBlock, csrc/common/quant.h)

function parseArgs(argv) {
  const o = { draws: 10, modes: ['int8', 'int8-fp8', 'fp8'], dims: [64, 128], kinds: ['normal', 'heavy', 'apart'],
    seq: 512, heads: 4, seed: 1, json: null, emulate: false, outliers: [], hadamard: false };
  const list = (s) => s.split(',').filter(Boolean);
  const int = (s, name) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer, got '${s}'`);
    return n;
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new RangeError(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--draws') o.draws = int(next(), a);
    else if (a === '--modes') o.modes = list(next());
    else if (a === '--dims') o.dims = list(next()).map((s) => int(s, a));
    else if (a === '--kinds') o.kinds = list(next());
    else if (a === '--seq') o.seq = int(next(), a);
    else if (a === '--heads') o.heads = int(next(), a);
    else if (a === '--seed') o.seed = int(next(), a);
    else if (a === '--json') o.json = next();
    else if (a === '--emulate-per-key-k') o.emulate = true;
    else if (a === '--emulate-outliers') o.outliers = list(next()).map((x) => int(x, a));
    else if (a === '--emulate-hadamard') o.hadamard = true;
    else if (a === '--emulate-q-smoothing') o.hadamard = o.smoothQ = true;
    else throw new RangeError(`unknown argument '${a}'`);
  }
  for (const k of o.kinds) if (!KINDS[k]) throw new RangeError(`unknown input kind '${k}' (${Object.keys(KINDS)})`);
  return o;
}

// Seeded generator (mulberry32): Math.random cannot be replayed, and a bad draw is worth replaying.
function rng(seed) {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

// 4 distinct channels of [0, D), drawn from r.
function outlierDraw(r, D) {
  const channels = [];
  while (channels.length < 4) {
    const c = Math.floor(r.uniform() * D);
    if (!channels.includes(c)) channels.push(c);
  }
  return channels;
}

// Each kind returns host q, k, v as [seq][heads][dim] float32 (rounded to bf16 later, by the tensors).
const KINDS = {
  normal(r, S, H, D) {
    const gauss = () => Float32Array.from({ length: S * H * D }, r.normal);
    return { q: gauss(), k: gauss(), v: gauss() };
  },
  heavy(r, S, H, D) {
    const x = KINDS.normal(r, S, H, D);
    const channels = outlierDraw(r, D);
    const gain = new Float64Array(D).fill(1);
    channels.forEach((c, i) => (gain[c] = 10 + (10 * i) / (channels.length - 1)));
    const offset = Float64Array.from({ length: D }, () => 40 * r.uniform() - 20);
    for (let e = 0; e < S * H * D; e++) {
      const c = e % D;
      x.q[e] *= gain[c];
      x.k[e] = x.k[e] * gain[c] + offset[c];
    }
    return x;
  },
  // test/helpers/quant.ts's 'heavy' (the tests' heavy-tailed inputs): Q with 2 outlier channels x4;
  // K +20 on every channel, its 4 outlier channels offset +-10..50 then x2; V's outliers x10..50.
  tests(r, S, H, D) {
    const x = KINDS.normal(r, S, H, D);
    const channels = outlierDraw(r, D);
    const mags = channels.map((_, i) => 10 + (40 * i) / (channels.length - 1));
    for (let row = 0; row < S * H; row++) {
      const at = row * D;
      for (let c = 0; c < D; c++) x.k[at + c] += 20;
      channels.forEach((c, i) => {
        x.k[at + c] = (x.k[at + c] + (i % 2 ? -mags[i] : mags[i])) * 2;
        if (i < 2) x.q[at + c] *= 4;
        x.v[at + c] *= mags[i];
      });
    }
    return x;
  },
  apart(r, S, H, D) {
    const x = KINDS.normal(r, S, H, D);
    const mean = Float64Array.from({ length: D }, () => (r.uniform() < 0.5 ? -1 : 1) * (2 + 4 * r.uniform()));
    for (let e = 0; e < S * H * D; e++) {
      x.q[e] += mean[e % D];
      x.k[e] -= mean[e % D];
    }
    return x;
  },
};

// softmax(q.kT / sqrt(D)) v in float64 over [S][H][D] arrays (causal: key j <= query i, lenQ = lenK).
// W: the width of q and k rows when they carry more than D channels (an exact term beside the
// quantized dot, as emu-hadqs's), still scaled by 1 / sqrt(D).
function attendF64(q, k, v, S, H, D, causal, W = D) {
  const out = new Float64Array(S * H * D);
  const scores = new Float64Array(S);
  const scale = 1 / Math.sqrt(D);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < S; i++) {
      const qi = (i * H + h) * W;
      const oi = (i * H + h) * D;
      const n = causal ? i + 1 : S;
      let m = -Infinity;
      for (let j = 0; j < n; j++) {
        const kj = (j * H + h) * W;
        let dot = 0;
        for (let c = 0; c < W; c++) dot += q[qi + c] * k[kj + c];
        scores[j] = dot * scale;
        if (scores[j] > m) m = scores[j];
      }
      let sum = 0;
      for (let j = 0; j < n; j++) sum += (scores[j] = Math.exp(scores[j] - m));
      for (let j = 0; j < n; j++) {
        const p = scores[j] / sum;
        const vj = (j * H + h) * D;
        for (let c = 0; c < D; c++) out[oi + c] += p * v[vj + c];
      }
    }
  }
  return out;
}

// x [S][H][D] quantized to int8 with one scale per head and per `rows` consecutive rows, returned
// dequantized: (q8 * s) . (k8 * s') in float64 is the exact integer dot times the two scales, up to
// float64 rounding. Math.round's ties (half up, not to even) are measure-zero on random data.
// exact(h, c) (optional): channel c of head h is kept as it is, outside the int8 range and scale.
function int8RoundTrip(x, S, H, D, rows, exact = () => false) {
  const y = new Float64Array(x.length);
  for (let h = 0; h < H; h++) {
    for (let r0 = 0; r0 < S; r0 += rows) {
      const r1 = Math.min(S, r0 + rows);
      let amax = 0;
      for (let r = r0; r < r1; r++)
        for (let c = 0; c < D; c++) if (!exact(h, c)) amax = Math.max(amax, Math.abs(x[(r * H + h) * D + c]));
      const step = amax / 127;
      for (let r = r0; r < r1; r++)
        for (let c = 0; c < D; c++) {
          const e = (r * H + h) * D + c;
          y[e] = exact(h, c) ? x[e] : step > 0 ? Math.round(x[e] / step) * step : 0;
        }
    }
  }
  return y;
}

// Per head, the n channels with the largest max|q_c| * max|k_c| (q null: the largest sum of k_c^2,
// K alone): a predicate (h, c) -> kept exact.
function outlierChannels(q, k, S, H, D, n) {
  const keep = new Uint8Array(H * D);
  for (let h = 0; h < H; h++) {
    const qmax = new Float64Array(D);
    const kmax = new Float64Array(D);
    for (let r = 0; r < S; r++)
      for (let c = 0; c < D; c++) {
        const e = (r * H + h) * D + c;
        if (q) {
          qmax[c] = Math.max(qmax[c], Math.abs(q[e]));
          kmax[c] = Math.max(kmax[c], Math.abs(k[e]));
        } else {
          qmax[c] = 1;
          kmax[c] += k[e] * k[e];
        }
      }
    const order = Array.from({ length: D }, (_, c) => c).sort((a, b) => qmax[b] * kmax[b] - qmax[a] * kmax[a]);
    for (const c of order.slice(0, n)) keep[h * D + c] = 1;
  }
  return (h, c) => keep[h * D + c] === 1;
}

// x [S][H][D] with each row multiplied by H D / sqrt(D): H the Sylvester Hadamard matrix (fast
// Walsh-Hadamard transform), D a diagonal of signs drawn from r (one draw, used for q and k alike).
function rotate(x, S, H, D, signs) {
  const y = Float64Array.from(x);
  const norm = 1 / Math.sqrt(D);
  for (let row = 0; row < S * H; row++) {
    const at = row * D;
    for (let c = 0; c < D; c++) y[at + c] *= signs[c];
    for (let len = 1; len < D; len <<= 1)
      for (let i = 0; i < D; i += len << 1)
        for (let j = i; j < i + len; j++) {
          const a = y[at + j];
          const b = y[at + j + len];
          y[at + j] = a + b;
          y[at + j + len] = a - b;
        }
    for (let c = 0; c < D; c++) y[at + c] *= norm;
  }
  return y;
}

// Q smoothing (SageAttention2): per head, each block of QUERY_BLOCK query rows minus its mean.
// Returns the smoothed q and the [S][H][D] array of each row's block mean.
const QUERY_BLOCK = 128;
function smoothQ(q, S, H, D) {
  const qs = Float64Array.from(q);
  const means = new Float64Array(q.length);
  for (let h = 0; h < H; h++)
    for (let r0 = 0; r0 < S; r0 += QUERY_BLOCK) {
      const r1 = Math.min(S, r0 + QUERY_BLOCK);
      for (let c = 0; c < D; c++) {
        let m = 0;
        for (let r = r0; r < r1; r++) m += q[(r * H + h) * D + c];
        m /= r1 - r0;
        for (let r = r0; r < r1; r++) {
          qs[(r * H + h) * D + c] -= m;
          means[(r * H + h) * D + c] = m;
        }
      }
    }
  return { qs, means };
}

// Rows [S][H] of a and b side by side: [S][H][2D].
function besides(a, b, S, H, D) {
  const y = new Float64Array(S * H * 2 * D);
  for (let row = 0; row < S * H; row++) {
    y.set(a.subarray(row * D, (row + 1) * D), row * 2 * D);
    y.set(b.subarray(row * D, (row + 1) * D), row * 2 * D + D);
  }
  return y;
}

// K minus its mean over keys, per head and channel (the library's smoothing, in float64 here).
function smoothK(k, S, H, D) {
  const mean = new Float64Array(H * D);
  for (let e = 0; e < k.length; e++) mean[e % (H * D)] += k[e] / S;
  return k.map((x, e) => x - mean[e % (H * D)]);
}

function accuracy(got, want) {
  let num = 0;
  let den = 0;
  let gg = 0;
  let gw = 0;
  for (let e = 0; e < want.length; e++) {
    num += (got[e] - want[e]) ** 2;
    den += want[e] ** 2;
    gg += got[e] ** 2;
    gw += got[e] * want[e];
  }
  // NaN in got propagates into both numbers and counts as over the contract below.
  return { rel: Math.sqrt(num / den), cos: gw / Math.sqrt(gg * den) };
}

const rounded = async (t) => Float64Array.from(await t.toArray());

// One draw of one (dim, kind): every mode and emulation, non-causal and causal. Returns
// [{ method, causal, rel, cos }].
async function measureDraw(o, r, D, kind) {
  const S = o.seq;
  const H = o.heads;
  const host = KINDS[kind](r, S, H, D);
  const shape = [1, S, H, D];
  const [tq, tk, tv] = [host.q, host.k, host.v].map((a) => Tensor.fromArray(a, shape, { dtype: 'bf16', device: 'cpu' }));
  // Enqueue the library's calls first: the CPU backend runs them while this thread computes the
  // float64 references.
  const runs = [];
  for (const causal of [false, true])
    for (const mode of o.modes) runs.push({ method: mode, causal, out: attention(tq, tk, tv, { quantized: mode, causal, returnLse: false }).out });
  const [q, k, v] = await Promise.all([tq, tk, tv].map(rounded));
  const results = [];
  const emulated = o.emulate ? [['emu-k64', KEY_BLOCK], ['emu-k1', 1]].map(([method, rows]) => ({
    method, q: int8RoundTrip(q, S, H, D, 1), k: int8RoundTrip(smoothK(k, S, H, D), S, H, D, rows),
  })) : [];
  if (o.outliers.length) {
    const ks = smoothK(k, S, H, D);
    for (const n of o.outliers) {
      const exact = outlierChannels(q, ks, S, H, D, n);
      emulated.push({ method: `emu-out${n}`, q: int8RoundTrip(q, S, H, D, 1, exact), k: int8RoundTrip(ks, S, H, D, KEY_BLOCK, exact) });
      const byK = outlierChannels(null, ks, S, H, D, n);
      emulated.push({ method: `emu-kout${n}`, q: int8RoundTrip(q, S, H, D, 1, byK), k: int8RoundTrip(ks, S, H, D, KEY_BLOCK, byK) });
    }
  }
  if (o.hadamard) {
    if (D & (D - 1)) throw new RangeError(`--emulate-hadamard needs a power-of-2 head dim, got ${D}`);
    const signs = Float64Array.from({ length: D }, () => (r.uniform() < 0.5 ? -1 : 1));
    const ks = smoothK(k, S, H, D);
    const k8 = int8RoundTrip(rotate(ks, S, H, D, signs), S, H, D, KEY_BLOCK);  // emu-had's K, emu-hadqs's too
    emulated.push({ method: 'emu-had', q: int8RoundTrip(rotate(q, S, H, D, signs), S, H, D, 1), k: k8 });
    if (o.smoothQ) {
      // Rotated as emu-had, and Q smoothed per 128-row block first: its int8 dot plus the exact
      // (block mean of q) . (smoothed k), side by side as 2D-wide rows.
      const { qs, means } = smoothQ(q, S, H, D);
      emulated.push({
        method: 'emu-hadqs',
        q: besides(int8RoundTrip(rotate(qs, S, H, D, signs), S, H, D, 1), means, S, H, D),
        k: besides(k8, ks, S, H, D),
        width: 2 * D,
      });
    }
  }
  for (const causal of [false, true]) {
    const want = attendF64(q, k, v, S, H, D, causal);
    for (const run of runs.filter((x) => x.causal === causal)) results.push({ method: run.method, causal, ...accuracy(await rounded(run.out), want) });
    for (const e of emulated) results.push({ method: e.method, causal, ...accuracy(attendF64(e.q, e.k, v, S, H, D, causal, e.width), want) });
  }
  for (const t of [tq, tk, tv, ...runs.map((x) => x.out)]) t.dispose();
  return results;
}

// Nearest-rank percentile of an ascending array.
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

function summarize(rel, cos) {
  const r = Float64Array.from(rel).sort();
  const over = rel.filter((x, i) => !(x <= REL_MAX && cos[i] >= COS_MIN)).length;
  return { draws: rel.length, relMedian: pct(r, 50), relP90: pct(r, 90), relP99: pct(r, 99), relMax: r[r.length - 1],
    cosMin: Math.min(...cos), over, overFraction: over / rel.length };
}

function printTable(cells) {
  const cols = ['method', 'd', 'kind', 'causal', 'draws', 'rel med', 'rel p90', 'rel p99', 'rel max', 'cos min', 'over'];
  const rows = cells.map((c) => [c.method, String(c.dim), c.kind, c.causal ? 'yes' : 'no', String(c.draws),
    ...[c.relMedian, c.relP90, c.relP99, c.relMax].map((x) => x.toExponential(2)), c.cosMin.toFixed(5),
    `${(100 * c.overFraction).toFixed(1)}%`]);
  const width = cols.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) => r.map((s, i) => (i < 4 ? s.padEnd(width[i]) : s.padStart(width[i]))).join('  ');
  console.log(line(cols));
  for (const r of rows) console.log(line(r));
}

async function main() {
  const o = parseArgs(process.argv);
  const r = rng(o.seed);
  const cells = new Map();
  const started = Date.now();
  for (const dim of o.dims)
    for (const kind of o.kinds) {
      for (let n = 0; n < o.draws; n++)
        for (const x of await measureDraw(o, r, dim, kind)) {
          const key = `${x.method}|${dim}|${kind}|${x.causal}`;
          if (!cells.has(key)) cells.set(key, { method: x.method, dim, kind, causal: x.causal, rel: [], cos: [] });
          cells.get(key).rel.push(x.rel);
          cells.get(key).cos.push(x.cos);
        }
      console.error(`d${dim} ${kind}: ${o.draws} draws, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
  const methods = [...o.modes, ...(o.emulate ? ['emu-k64', 'emu-k1'] : []), ...o.outliers.flatMap((n) => [`emu-out${n}`, `emu-kout${n}`]), ...(o.hadamard ? ['emu-had'] : []), ...(o.smoothQ ? ['emu-hadqs'] : [])];
  const summary = [...cells.values()]
    .map((c) => ({ method: c.method, dim: c.dim, kind: c.kind, causal: c.causal, ...summarize(c.rel, c.cos), rel: c.rel, cos: c.cos }))
    .sort((a, b) => methods.indexOf(a.method) - methods.indexOf(b.method) || a.dim - b.dim
      || o.kinds.indexOf(a.kind) - o.kinds.indexOf(b.kind) || a.causal - b.causal);
  console.log(`seq ${o.seq}, heads ${o.heads}, bf16, seed ${o.seed}; contract rel L2 <= ${REL_MAX}, cos >= ${COS_MIN}`);
  printTable(summary);
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ options: o, contract: { relMax: REL_MAX, cosMin: COS_MIN }, cells: summary }, null, 1));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
