/** Attention throughput benchmark, used by `attn-cuda bench` and scripts/. */
import { attention } from './attention';
import { Device } from './device';
import { DType } from './dtype';
import { synchronize } from './memory';
import { Tensor } from './tensor';

/** One benchmark shape. */
export interface BenchCase {
  batch: number;
  seqLen: number;
  heads: number;
  headDim: number;
  causal: boolean;
  dtype: DType;
}

/** A measured case. */
export interface BenchResult extends BenchCase {
  device: Device;
  /** Median milliseconds per call. */
  ms: number;
  /** Achieved TFLOP/s (causal counts half the score matrix, as FlashAttention reports). */
  tflops: number;
}

/** Benchmark settings. */
export interface BenchOptions {
  device: Device;
  /** Timed repetitions per case (median reported). */
  repeats?: number;
  /** Calls per timed repetition. */
  iters?: number;
  /** Called before each case (for a progress display). */
  onProgress?: (index: number, total: number, c: BenchCase) => void;
}

/** FLOPs of one forward: two matmuls of 2·Sq·Sk·D each per head, halved when causal. */
export function attentionFlops(c: BenchCase): number {
  const f = 4 * c.batch * c.heads * c.seqLen * c.seqLen * c.headDim;
  return c.causal ? f / 2 : f;
}

/**
 * The default grid: FlashAttention's benchmark shape (16k tokens per batch, model dim 2048) on a
 * GPU; a small grid on the CPU so it finishes in seconds.
 */
export function defaultGrid(device: Device, quick = false): BenchCase[] {
  const cases: BenchCase[] = [];
  if (device === 'cpu') {
    for (const headDim of [64, 128])
      for (const seqLen of quick ? [128] : [128, 512])
        for (const causal of [false, true]) cases.push({ batch: 1, seqLen, heads: 4, headDim, causal, dtype: 'f32' });
    return cases;
  }
  const seqs = quick ? [1024, 4096] : [512, 1024, 2048, 4096, 8192, 16384];
  for (const headDim of [64, 128, 256])
    for (const seqLen of seqs)
      for (const causal of [false, true])
        cases.push({ batch: Math.max(1, 16384 / seqLen), seqLen, heads: 2048 / headDim, headDim, causal, dtype: 'bf16' });
  return cases;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Times attention() on each case; inputs are random (never zeros). */
export async function benchAttention(cases: readonly BenchCase[], options: BenchOptions): Promise<BenchResult[]> {
  const { device } = options;
  const repeats = options.repeats ?? (device === 'cpu' ? 3 : 7);
  const results: BenchResult[] = [];
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    options.onProgress?.(i, cases.length, c);
    const shape = [c.batch, c.seqLen, c.heads, c.headDim];
    const q = Tensor.randn(shape, { dtype: c.dtype, device });
    const k = Tensor.randn(shape, { dtype: c.dtype, device });
    const v = Tensor.randn(shape, { dtype: c.dtype, device });
    const out = Tensor.empty(shape, { dtype: c.dtype, device });
    const run = (): void => {
      const r = attention(q, k, v, { causal: c.causal, out });
      r.lse?.dispose();
    };
    // Size the inner loop to ~50 ms on the GPU so launch gaps and timer resolution vanish.
    run();
    await synchronize(device);
    let t0 = performance.now();
    run();
    await synchronize(device);
    const once = Math.max(performance.now() - t0, 1e-3);
    const iters = options.iters ?? (device === 'cpu' ? 1 : Math.max(1, Math.min(200, Math.round(50 / once))));
    const times: number[] = [];
    for (let r = 0; r < repeats; r++) {
      t0 = performance.now();
      for (let it = 0; it < iters; it++) run();
      await synchronize(device);
      times.push((performance.now() - t0) / iters);
    }
    const ms = median(times);
    results.push({ ...c, device, ms, tflops: attentionFlops(c) / (ms * 1e-3) / 1e12 });
    for (const t of [q, k, v, out]) t.dispose();
  }
  return results;
}

/** Renders results as a fixed-width table. */
export function formatTable(results: readonly BenchResult[]): string {
  const head = ['device', 'dtype', 'hdim', 'seq', 'batch', 'heads', 'causal', 'ms', 'TFLOP/s'];
  const rows = results.map((r) => [
    r.device, r.dtype, String(r.headDim), String(r.seqLen), String(r.batch), String(r.heads), r.causal ? 'yes' : 'no',
    r.ms.toFixed(3), r.tflops < 1 ? r.tflops.toFixed(4) : r.tflops.toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
