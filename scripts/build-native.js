#!/usr/bin/env node
// Builds the native addon (install step). A prebuilt binary for this platform in prebuilds/ is
// used as is unless --force; otherwise cmake-js compiles it, with CUDA kernels when nvcc is found.
// Environment: ATTN_CUDA=ON|OFF|AUTO, ATTN_BUILD_JOBS=N, ATTN_PTXAS_VERBOSE=1, ATTN_CUDA_DEFINES and
// ATTN_CUDA_GENCODE (tuning).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const force = process.argv.includes('--force');

function prebuiltLoads() {
  try {
    const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
    if (!fs.existsSync(dir)) return false;
    // node-gyp-build prefers prebuilds/ when present; loading proves the binary fits this Node.
    require('node-gyp-build')(root);
    return true;
  } catch (err) {
    console.warn(`attn-cuda: prebuilt binary unusable (${err.message}); building from source`);
    return false;
  }
}

function findNvcc() {
  const candidates = [];
  if (process.env.CUDACXX) candidates.push(process.env.CUDACXX);
  if (process.env.CUDA_HOME) candidates.push(path.join(process.env.CUDA_HOME, 'bin', 'nvcc'));
  for (const dir of (process.env.PATH || '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, 'nvcc'));
  candidates.push('/usr/local/cuda/bin/nvcc');
  return candidates.find((p) => fs.existsSync(p)) || null;
}

if (!force && prebuiltLoads()) {
  console.log('attn-cuda: using prebuilt binary');
  process.exit(0);
}

const cudaMode = (process.env.ATTN_CUDA || 'AUTO').toUpperCase();
const nvcc = cudaMode === 'OFF' ? null : findNvcc();
const jobs = process.env.ATTN_BUILD_JOBS || String(Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length));
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const args = [cmakeJs, 'compile', '--directory', root, `--CDATTN_CUDA=${cudaMode}`];
if (nvcc) args.push(`--CDCMAKE_CUDA_COMPILER=${nvcc}`);
if (process.env.ATTN_PTXAS_VERBOSE) args.push('--CDATTN_PTXAS_VERBOSE=ON');
// Tuning builds only: extra CUDA definitions, e.g. ATTN_FLASH_HDIM256_TILE=64,32,4,false,2,2.
args.push(`--CDATTN_CUDA_DEFINES=${process.env.ATTN_CUDA_DEFINES || ''}`);
// Tuning builds may target one architecture only (e.g. "-gencode=arch=compute_90a,code=sm_90a").
if (process.env.ATTN_CUDA_GENCODE) args.push(`--CDATTN_CUDA_GENCODE=${process.env.ATTN_CUDA_GENCODE}`);
const haveNinja = spawnSync('ninja', ['--version'], { stdio: 'ignore' }).status === 0;
if (haveNinja) args.push('--generator', 'Ninja');

console.log(`attn-cuda: building native addon (${nvcc ? `CUDA via ${nvcc}` : 'CPU only'}, ${jobs} jobs)`);
const res = spawnSync(process.execPath, args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: jobs },
});
if (res.status !== 0) {
  console.error('attn-cuda: native build failed');
  process.exit(res.status || 1);
}
