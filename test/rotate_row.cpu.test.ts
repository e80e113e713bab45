/**
 * The CUDA preprocessing's Q/K rotation, split over a warp's lanes, against the CPU backend's: the
 * device source compiled for the host with 32 threads as lanes (test/native/rotate_row_lanes.cpp),
 * so its lane arithmetic is checked where there is no GPU. Needs a C++20 compiler (the one that
 * builds the addon from source); skipped, with a note, without one.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const compiler = ['c++', 'g++', 'clang++'].find((cxx) => spawnSync(cxx, ['--version']).status === 0);

(compiler ? describe : describe.skip)('rotateRowLanes (csrc/cuda/quant/rotate_row.cuh) on emulated lanes', () => {
  test('every lane layout of the kernels equals the CPU rotation bit for bit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotate-row-'));
    try {
      const exe = join(dir, 'rotate_row_lanes');
      const build = spawnSync(compiler!, ['-std=c++20', '-O1', '-pthread', '-o', exe, join(__dirname, 'native', 'rotate_row_lanes.cpp')], { encoding: 'utf8' });
      expect(build.stderr).toBe('');
      expect(build.status).toBe(0);
      const seed = String(1 + Math.floor(Math.random() * 1e9));
      const run = spawnSync(exe, [seed], { encoding: 'utf8' });
      const lines = run.stdout.trim().split('\n');
      expect(lines).toHaveLength(4);
      for (const line of lines) expect(line).toMatch(/: 0 of \d+ values differ$/);
      expect(run.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
