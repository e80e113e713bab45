// The block-sparse benchmark's masks, shared by scripts/bench-gpu.js and scripts/profile-case.js
// (scripts/bench_torch.py rebuilds the same ones): row i keeps key block j iff (37 j + 11 i) mod nK
// < count, a scattered pattern with exactly `count` blocks in every row.
'use strict';

function hashedGrid(nQ, nK, count) {
  const g = new Uint8Array(nQ * nK);
  for (let i = 0; i < nQ; i++) for (let j = 0; j < nK; j++) g[i * nK + j] = (37 * j + 11 * i) % nK < count ? 1 : 0;
  return g;
}

module.exports = { hashedGrid };
