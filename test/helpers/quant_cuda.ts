/** The CUDA quantized-forward suites (one jest file per mode, so they run in parallel). */
import { cuda, DType, QuantizedMode } from '../../lib';
import { accuracy, caseFor, expectMeets, InputKind, makeInputs, QuantCase, quantCases, quantContract, referenceOf, runQuant } from './quant';
import { maxAbsDiff, relL2 } from './reference';

export const describeCuda = cuda.isAvailable() ? describe : describe.skip;
export const sm = cuda.isAvailable() ? cuda.devices()[0].sm : 0;
/** FP8 needs sm_89+; on older GPUs the int8-fp8 and fp8 modes must refuse with a RangeError instead. */
export const supported = (mode: QuantizedMode): boolean => mode === 'int8' || sm >= 89;

/** CUDA vs the CPU emulation on the same inputs: the same quantized values, so only accumulation
 * order, exp2 approximation and the output rounding differ. */
const AGREE: Record<string, number> = { bf16: 5e-3, f16: 2e-3 };

/** One case on the GPU: the accuracy contract against float64 and agreement with the CPU emulation. */
export async function checkCase(c0: QuantCase, kind: InputKind, dtype: DType, mode: QuantizedMode, forceSm80 = false): Promise<void> {
  const c = caseFor(c0, kind);
  const x = makeInputs(c, kind);
  const [got, cpu, want] = await Promise.all([
    runQuant(c, x, dtype, 'cuda:0', mode, { forceSm80 }), runQuant(c, x, dtype, 'cpu', mode), referenceOf(c, x, dtype),
  ]);
  const a = accuracy(got, want);
  expectMeets(a, quantContract(mode, kind, c));
  // 'fp8' Q.K^T runs on e4m3 wgmma, whose accumulator keeps fewer bits than fp32 (Hopper's FP8
  // tensor cores): the scores move enough that some P round to another e4m3 value. Measured on the
  // H100 (runs 16-18): lse up to 2.65e-3, output rel. L2 up to 8.3e-3 (heavy) and 5.6e-3 (random)
  // from the emulation's fp32 sums; every other mode stays within AGREE / 2e-3.
  const fp8 = mode === 'fp8';
  expect(relL2(got.out, cpu.out)).toBeLessThan(fp8 ? 2e-2 : AGREE[dtype]);
  const finite = (r: typeof got): number[] => Array.from(r.lse, (v) => (v === -Infinity ? -1e30 : v));
  expect(maxAbsDiff(finite(got), finite(cpu))).toBeLessThan(fp8 ? 5e-3 : 2e-3);
}

/** The contract and CPU-agreement suite of one mode (on compute capability 9.0: the sm_90a kernel,
 * csrc/cuda/hopper/flash_fwd_sm90_quant.cuh; L1500 and k 2100 walk more key blocks than its ring holds). */
export function quantModeSuite(mode: QuantizedMode): void {
  const long: Array<[string, QuantCase]> = [
    ['d128 L1500 causal GQA 4:1', { lenQ: [1500], lenK: [1500], headsQ: 4, headsKv: 1, dim: 128, options: { causal: true } }],
    ['d64 q 300 < k 2100 causal', { lenQ: [300], lenK: [2100], headsQ: 2, headsKv: 2, dim: 64, options: { causal: true } }],
    ['d128 varlen long', { lenQ: [700, 1, 260], lenK: [700, 900, 1], headsQ: 4, headsKv: 2, dim: 128, varlen: true, options: { causal: true } }],
  ];
  (supported(mode) ? describeCuda : describe.skip)(`CUDA quantized attention, ${mode}`, () => {
    // fp8 shares every path but Q.K with int8-fp8 (f16 output included): bf16 only keeps the suite short.
    for (const dtype of (mode === 'fp8' ? ['bf16'] : ['bf16', 'f16']) as DType[]) {
      describe(dtype, () => {
        for (const kind of ['random', 'heavy', 'shared'] as const) {
          test.each([...quantCases([64, 128]), ...long])(`${kind} %s: contract vs float64, agreement with the CPU emulation`, (_n, c) =>
            checkCase(c, kind, dtype, mode));
        }
      });
    }
  });
}
