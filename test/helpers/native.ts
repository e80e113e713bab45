/**
 * Host programs under test/native/ that compile device headers for the CPU (threads as lanes), so
 * their lane arithmetic is checked where there is no GPU. They need a C++20 compiler with <barrier>
 * (the one that builds the addon from source does); suites skip where there is none.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A compiler that builds a C++20 program using <barrier> (the lanes' shuffle), or undefined. */
export function cxx20(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'cxx20-'));
  try {
    const src = join(dir, 'probe.cpp');
    writeFileSync(src, '#include <barrier>\nint main() { std::barrier<> b(1); b.arrive_and_wait(); }\n');
    return ['c++', 'g++', 'clang++'].find((cxx) => spawnSync(cxx, ['-std=c++20', '-pthread', '-o', join(dir, 'probe'), src]).status === 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Builds test/native/`source` with `compiler` and runs it with a fresh random seed: its stdout lines
 * and exit status. A failed build throws with the compiler's errors.
 */
export function runNative(compiler: string, source: string): { lines: string[]; status: number | null } {
  const dir = mkdtempSync(join(tmpdir(), 'native-'));
  try {
    const exe = join(dir, 'program');
    const build = spawnSync(compiler, ['-std=c++20', '-O1', '-pthread', '-o', exe, join(__dirname, '..', 'native', source)], { encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`${compiler} failed on ${source}:\n${build.stderr}`);
    const seed = String(1 + Math.floor(Math.random() * 1e9));
    const run = spawnSync(exe, [seed], { encoding: 'utf8' });
    return { lines: run.stdout.trim().split('\n'), status: run.status };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
