import { execFileSync } from 'node:child_process';
import path from 'node:path';

const cli = path.join(__dirname, '..', 'dist', 'cli.js');

describe('attn-cuda CLI', () => {
  test('info --json describes the build and the CPU kernels', () => {
    const out = JSON.parse(execFileSync(process.execPath, [cli, 'info', '--json'], { encoding: 'utf8' }));
    expect(typeof out.builtWithCuda).toBe('boolean');
    expect(out.cpuThreads).toBeGreaterThan(0);
    expect(out.kernels.cpu.map((k: { op: string }) => k.op)).toContain('attention');
    if (!out.cudaAvailable) expect(out.cudaReason.length).toBeGreaterThan(0);
  });

  test('bench --quick --json --device cpu measures positive throughput', () => {
    const out = JSON.parse(execFileSync(process.execPath, [cli, 'bench', '--quick', '--json', '--device', 'cpu'], { encoding: 'utf8' }));
    expect(out.length).toBeGreaterThan(0);
    for (const r of out) {
      expect(r.ms).toBeGreaterThan(0);
      expect(r.tflops).toBeGreaterThan(0);
    }
  });

  test('unknown command exits 2 with usage', () => {
    expect(() => execFileSync(process.execPath, [cli, 'frobnicate'], { stdio: 'pipe' })).toThrow(/usage/);
  });
});
