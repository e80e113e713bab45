/**
 * The CUDA preprocessing's Q/K rotation, split over a warp's lanes, against the CPU backend's: the
 * device source compiled for the host with 32 threads as lanes (test/native/rotate_row_lanes.cpp),
 * so its lane arithmetic is checked where there is no GPU. Skipped without a C++20 compiler.
 */
import { cxx20, runNative } from './helpers/native';

const compiler = cxx20();

(compiler ? describe : describe.skip)('rotateRowLanes (csrc/cuda/quant/rotate_row.cuh) on emulated lanes', () => {
  test('every lane layout of the kernels equals the CPU rotation bit for bit', () => {
    const { lines, status } = runNative(compiler!, 'rotate_row_lanes.cpp');
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(line).toMatch(/: 0 of \d+ values differ$/);
    expect(status).toBe(0);
  }, 60_000);
});
