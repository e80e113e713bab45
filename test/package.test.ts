/**
 * Packaging: prebuildify output + `npm pack`, installed into an empty project with nvcc hidden,
 * loads the prebuilt binary, computes CPU attention correctly and passes the CPU test suites
 * (scripts/pack-check.js).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

describe('packaging', () => {
  test('the packed tarball installs without a compiler and loads the prebuilt binary', () => {
    const out = execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'pack-check.js')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(out).toMatch(/smoke: prebuilt .*\.node loaded; CPU attention and paged decode match float64/);
    expect(out).toMatch(/CPU test suites against the installed package: \d+ passed, \d+ total/);
    expect(out).toMatch(/pack-check: ok/);
  }, 900_000);
});
