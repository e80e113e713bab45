#!/usr/bin/env node
// Packaging check: prebuild (when prebuilds/ has no binary for this platform), `npm pack`, install
// the tarball into an empty project with nvcc hidden, and prove there that the prebuilt binary is
// the one loaded (no source build), that CPU attention and paged decode are right, and that the
// repository's CPU test suites pass against the installed package.
//   node scripts/pack-check.js        (prints "pack-check: ok" and exits 0 on success)
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });

const prebuildDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
// Newest modification time under the native sources: a prebuilt binary older than that is stale.
function newestSource(dir) {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}
const sourcesTime = Math.max(newestSource(path.join(root, 'csrc')), newestSource(path.join(root, 'binding')), fs.statSync(path.join(root, 'CMakeLists.txt')).mtimeMs);
const prebuilt = fs.existsSync(prebuildDir) ? fs.readdirSync(prebuildDir).filter((f) => f.endsWith('.node')) : [];
if (prebuilt.length === 0 || prebuilt.some((f) => fs.statSync(path.join(prebuildDir, f)).mtimeMs < sourcesTime)) {
  console.log('pack-check: no current prebuilt binary, running npm run prebuild');
  fs.rmSync(prebuildDir, { recursive: true, force: true });
  run(npm, ['run', 'prebuild'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'attn-pack-'));
try {
  const tarball = run(npm, ['pack', '--silent', '--pack-destination', work], { cwd: root }).trim().split('\n').pop();
  const project = path.join(work, 'project');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'pack-check', private: true }));

  // A machine without nvcc: no CUDA directory on PATH, no CUDA variables, and no source build
  // allowed to find one elsewhere (ATTN_CUDA=OFF only matters if the prebuilt fails to load).
  const env = { ...process.env, ATTN_CUDA: 'OFF' };
  delete env.CUDA_HOME;
  delete env.CUDACXX;
  env.PATH = (env.PATH || '').split(path.delimiter).filter((d) => !fs.existsSync(path.join(d, 'nvcc'))).join(path.delimiter);
  const log = run(npm, ['install', path.join(work, tarball), '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], { cwd: project, env });
  const installed = path.join(project, 'node_modules', 'attn-cuda');
  if (!/using prebuilt binary/.test(log)) throw new Error(`install did not use the prebuilt binary:\n${log}`);
  if (fs.existsSync(path.join(installed, 'build'))) throw new Error('install built from source (build/ exists)');

  fs.copyFileSync(path.join(__dirname, 'pack-smoke.js'), path.join(project, 'smoke.js'));
  const out = run(process.execPath, ['smoke.js'], { cwd: project, env });
  process.stdout.write(out);

  // The repository's CPU test suites, with every import of lib/ pointed at the installed package.
  const jestConfig = path.join(work, 'jest.config.json');
  fs.writeFileSync(jestConfig, JSON.stringify({
    rootDir: root,
    roots: ['<rootDir>/test'],
    testMatch: ['**/attention.cpu.test.ts', '**/paged.cpu.test.ts', '**/errors.test.ts', '**/tensor.test.ts'],
    testEnvironment: 'node',
    // lib and its modules (tests reach some internals, e.g. lib/native to spy on the native ops):
    // all from the installed package, so the tests and the package share one module instance.
    moduleNameMapper: { '^(\\.\\./)+lib$': path.join(installed, 'dist', 'index.js'), '^(\\.\\./)+lib/(.*)$': path.join(installed, 'dist', '$2') },
    transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: path.join(root, 'test', 'tsconfig.json') }] },
  }));
  const jest = path.join(root, 'node_modules', 'jest', 'bin', 'jest.js');
  const res = spawnSync(process.execPath, ['--expose-gc', jest, '--config', jestConfig], { cwd: root, env, encoding: 'utf8' });
  const summary = /Tests:\s+(.*)/.exec(res.stderr || '');
  if (res.status !== 0 || !summary || !/\d+ passed/.test(summary[1])) throw new Error(`CPU tests against the installed package failed:\n${res.stderr}`);
  console.log(`pack-check: CPU test suites against the installed package: ${summary[1]}`);
  console.log('pack-check: ok');
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
