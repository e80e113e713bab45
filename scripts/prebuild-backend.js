#!/usr/bin/env node
// prebuildify's build backend (`prebuildify --node-gyp scripts/prebuild-backend.js`): prebuildify
// calls it like node-gyp (`rebuild --target=… --arch=… --release`); it builds with cmake-js through
// scripts/build-native.js instead and leaves the addon in build/Release, where prebuildify looks.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const args = process.argv.slice(2);
if (args[0] !== 'rebuild') {
  console.error(`prebuild-backend: only "rebuild" is supported, got "${args.join(' ')}"`);
  process.exit(2);
}
const arch = args.find((a) => a.startsWith('--arch='));
if (arch && arch.slice(7) !== process.arch) {
  console.error(`prebuild-backend: cross-compiling to ${arch.slice(7)} is not supported`);
  process.exit(2);
}
// A rebuild starts clean, so a prebuild never ships a configuration cached by an earlier build.
fs.rmSync(path.join(__dirname, '..', 'build'), { recursive: true, force: true });
const res = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js'), '--force'], { stdio: 'inherit' });
process.exit(res.status === null ? 1 : res.status);
