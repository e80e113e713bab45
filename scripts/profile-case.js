// One launch of a benchmark case, for a profiler: `ncu -k regex:NAME node scripts/profile-case.js CASE`.
// Cases: mla [CONTEXT] [HEADS] [DTYPE] (batch 64, 8k or CONTEXT, 128 or HEADS heads, page 64, a bf16 or
//        DTYPE (fp8e4m3) cache: by default the compute-bound MLA cell),
//        decode1x8k (paged decode, 32/8 heads, d128, batch 1, 8k, page 16),
//        decode CONTEXT [SPLITS] [LAUNCHES] (the same at any context; SPLITS 0 = the backend's
//        choice; LAUNCHES back-to-back launches, so `ncu --launch-skip` can take a warm one),
//        sparse10 (block-sparse forward, 16k, 16 heads, d128, bf16, the benchmark's hashed 10% mask),
//        quant [MODE] [SEQ] [DIM] (quantized forward, the benchmark's cell: 16k tokens, 2048 / DIM heads,
//        bf16, non-causal; MODE int8-fp8 by default, SEQ 4096, DIM 128: its two preprocessing launches
//        and the attention kernel).
const path = require('node:path');
const root = path.join(__dirname, '..');
const { Tensor, PagedKVCache, PagedLatentCache, BlockSparseMask, attention, synchronize } = require(root);
const { native } = require(path.join(root, 'dist', 'native.js'));
const { hashedGrid } = require('./hashed-grid.js');
const device = 'cuda:0';

async function main(name) {
  if (name === 'mla') {
    const batch = 64, context = Number(process.argv[3] || 8192), heads = Number(process.argv[4] || 128), pageSize = 64;
    const cache = new PagedLatentCache({ layers: 1, pageSize, dtype: process.argv[5] || 'bf16', device, capacityPages: batch * (context / pageSize), maxSequences: batch, maxSequenceLength: context });
    const rows = Tensor.randn([context, 576], { dtype: 'bf16', device });
    const seqs = Array.from({ length: batch }, () => { const s = cache.addSequence(); cache.append(s, 0, rows); return s; });
    const q = Tensor.randn([batch, heads, 576], { dtype: 'bf16', device, std: 0.5 });
    const out = Tensor.empty([batch, heads, 512], { dtype: 'bf16', device });
    const { rows: tableRows, seqLens } = cache.batchInfo(seqs, 0, 'seqs');
    native.mlaAttention(q, cache.pool, cache.scales, 0, cache.blockTable, out, null, { scale: 1 / Math.sqrt(192), softcap: 0, causal: true, rows: tableRows, seqLens, numSplits: 0 });
  } else if (name === 'decode1x8k' || name === 'decode') {
    const context = name === 'decode' ? Number(process.argv[3] || 8192) : 8192, pageSize = 16;
    const numSplits = name === 'decode' ? Number(process.argv[4] || 0) : 0;
    const launches = name === 'decode' ? Number(process.argv[5] || 1) : 1;
    const cache = new PagedKVCache({ layers: 1, kvHeads: 8, headDim: 128, pageSize, device, dtype: 'bf16', capacityPages: Math.ceil(context / pageSize), maxSequences: 1, maxSequenceLength: context });
    const k = Tensor.randn([context, 8, 128], { dtype: 'bf16', device });
    const v = Tensor.randn([context, 8, 128], { dtype: 'bf16', device });
    const s = cache.addSequence();
    cache.append(s, 0, k, v);
    const q = Tensor.randn([1, 32, 128], { dtype: 'bf16', device });
    const out = Tensor.empty([1, 32, 128], { dtype: 'bf16', device });
    const { rows, seqLens } = cache.batchInfo([s], 0, 'seqs');
    for (let i = 0; i < launches; i++) {
      native.pagedAttention(q, cache.pool, 0, cache.blockTable, out, null, { scale: 1 / Math.sqrt(128), softcap: 0, causal: true, windowLeft: -1, windowRight: -1, rows, seqLens, numSplits });
    }
  } else if (name === 'sparse10') {
    const S = 16384, nb = S / 128, count = Math.round(nb / 10);
    const shape = [1, S, 16, 128];
    const [q, k, v] = [0, 1, 2].map(() => Tensor.randn(shape, { dtype: 'bf16', device }));
    const out = Tensor.empty(shape, { dtype: 'bf16', device });
    const blockMask = BlockSparseMask.fromDense(hashedGrid(nb, nb, count), { numQBlocks: nb, numKBlocks: nb }, { device });
    attention(q, k, v, { out, returnLse: false, blockMask });
  } else if (name === 'quant') {
    const quantized = process.argv[3] || 'int8-fp8', S = Number(process.argv[4] || 4096), D = Number(process.argv[5] || 128);
    const shape = [16384 / S, S, 2048 / D, D];
    const [q, k, v] = [0, 1, 2].map(() => Tensor.randn(shape, { dtype: 'bf16', device }));
    attention(q, k, v, { out: Tensor.empty(shape, { dtype: 'bf16', device }), returnLse: false, quantized });
  } else {
    throw new RangeError(`unknown case '${name}' (mla, decode1x8k, decode, sparse10, quant)`);
  }
  await synchronize(device);
}

main(process.argv[2]).catch((e) => { console.error(e); process.exit(1); });
