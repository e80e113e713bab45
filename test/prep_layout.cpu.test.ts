/**
 * The quantized preprocessing's layout code (csrc/cuda/quant/prep_layout.cuh) compiled for the host
 * (test/native/prep_layout_lanes.cpp): V's transposition places every (channel, key) of a block
 * once, with no shared-memory bank conflict on any store, and after the copy out every byte sits
 * where the attention kernels read it (the fp8 key order included).
 * Skipped without a C++20 compiler.
 */
import { cxx20, runNative } from './helpers/native';

const compiler = cxx20();

(compiler ? describe : describe.skip)('quantized preprocessing layout (prep_layout.cuh) on emulated lanes', () => {
  test('V staging is a conflict-free bijection', () => {
    const { lines, status } = runNative(compiler!, 'prep_layout_lanes.cpp');
    expect(lines.filter((l) => l.startsWith('V D '))).toHaveLength(4);
    for (const line of lines) expect(line).toMatch(/, 0 bad$/);
    expect(status).toBe(0);
  }, 60_000);
});
