/** Waiting out the GC in tests that read the process-wide memory counters. */
import { synchronize } from '../../lib';

/**
 * Lets finalizers of tensors that earlier tests left to the GC run (three gc() rounds, each followed
 * by a timer turn; gc() needs --expose-gc, which npm test passes), then drains the CPU queue, so
 * that memory.stats() read next does not move under the caller.
 */
export async function settleFinalizers(): Promise<void> {
  const gc = (global as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 10));
  }
  await synchronize('cpu');
}
