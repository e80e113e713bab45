/**
 * The CUDA preprocessing's Q/K rotation, split over a warp's lanes, against the CPU backend's: the
 * device source compiled for the host with 32 threads as lanes (test/native/rotate_row_lanes.cpp),
 * so its lane arithmetic is checked where there is no GPU. Needs a C++20 compiler with <barrier>
 * (the one that builds the addon from source does); skipped without one.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A compiler that builds a C++20 program using <barrier> (the lanes' shuffle); none: the suite skips.
function cxx20(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'cxx20-'));
  try {
    const src = join(dir, 'probe.cpp');
    writeFileSync(src, '#include <barrier>\nint main() { std::barrier<> b(1); b.arrive_and_wait(); }\n');
    return ['c++', 'g++', 'clang++'].find((cxx) => spawnSync(cxx, ['-std=c++20', '-pthread', '-o', join(dir, 'probe'), src]).status === 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const compiler = cxx20();

(compiler ? describe : describe.skip)('rotateRowLanes (csrc/cuda/quant/rotate_row.cuh) on emulated lanes', () => {
  test('every lane layout of the kernels equals the CPU rotation bit for bit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotate-row-'));
    try {
      const exe = join(dir, 'rotate_row_lanes');
      const build = spawnSync(compiler!, ['-std=c++20', '-O1', '-pthread', '-o', exe, join(__dirname, 'native', 'rotate_row_lanes.cpp')], { encoding: 'utf8' });
      if (build.status !== 0) throw new Error(`${compiler} failed on rotate_row_lanes.cpp:\n${build.stderr}`);
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
