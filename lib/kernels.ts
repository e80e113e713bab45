/** The kernel table: which backend serves which op, dtype and head dim. Dispatch reads it. */
import type { Device } from './device';
import { cuda } from './device';
import type { DType } from './dtype';

/** One family of compiled kernels. */
export interface KernelFamily {
  /** The public op it serves. */
  op: 'attention' | 'pagedAttention' | 'mlaDecode' | 'quantizedAttention';
  /** `cpu` or `cuda`. */
  backend: 'cpu' | 'cuda';
  /** Lowest compute capability (cuda only). */
  minSm?: number;
  dtypes: readonly DType[];
  /** Supported head dims, or 'any'. */
  headDims: readonly number[] | 'any';
  /** What it is, for `attn-cuda info`. */
  description: string;
}

/** Every kernel family this package ships (CUDA families need a CUDA build). */
export const KERNEL_FAMILIES: readonly KernelFamily[] = [
  { op: 'attention', backend: 'cpu', dtypes: ['f32', 'f16', 'bf16'], headDims: 'any', description: 'dense forward, multi-threaded, float32 math' },
  { op: 'attention', backend: 'cuda', minSm: 80, dtypes: ['f16', 'bf16'], headDims: [32, 64, 96, 128, 256], description: 'FlashAttention-2 forward (mma.sync, cp.async)' },
  { op: 'pagedAttention', backend: 'cpu', dtypes: ['f32', 'f16', 'bf16'], headDims: 'any', description: 'paged decode/prefill, multi-threaded' },
  { op: 'pagedAttention', backend: 'cuda', minSm: 80, dtypes: ['f16', 'bf16'], headDims: [64, 128, 256], description: 'split-KV paged decode (flash-decoding), GQA-grouped; prefill (>= 64 rows per sequence) and block-sparse masks on the FlashAttention-2 forward through the block table' },
  // MLA: dtypes are the latent cache's storage types; the head dim is the 576-wide cached row.
  { op: 'mlaDecode', backend: 'cpu', dtypes: ['f32', 'f16', 'bf16', 'fp8e4m3'], headDims: [576], description: 'MLA decode/prefill over the paged latent cache (absorbed weights), multi-threaded' },
  { op: 'mlaDecode', backend: 'cuda', minSm: 80, dtypes: ['bf16', 'fp8e4m3'], headDims: [576], description: 'MLA split-KV decode/prefill, heads share each latent page read (mma.sync, cp.async)' },
  { op: 'quantizedAttention', backend: 'cpu', dtypes: ['f32', 'f16', 'bf16'], headDims: 'any', description: 'quantized forward, emulates the CUDA rounding exactly' },
  { op: 'quantizedAttention', backend: 'cuda', minSm: 80, dtypes: ['f16', 'bf16'], headDims: [64, 128], description: "SageAttention-style INT8 Q·Kᵀ + f16 P·V ('int8'), FP8 P·V on sm_89+ ('int8-fp8'), FP8 Q·Kᵀ and P·V on sm_89+ ('fp8'); wgmma/TMA on sm_90" },
];

/** The families usable on `device`. */
export function availableFamilies(device: Device): KernelFamily[] {
  if (device === 'cpu') return KERNEL_FAMILIES.filter((f) => f.backend === 'cpu');
  const index = Number(device.slice(5));
  const dev = cuda.devices()[index];
  return KERNEL_FAMILIES.filter((f) => f.backend === 'cuda' && dev !== undefined && dev.sm >= (f.minSm ?? 0));
}

// selectKernel's answers: the table and the devices do not change while the process runs, and a
// decode step asks the same question every call.
const selected = new Map<string, KernelFamily>();

/** Finds the kernel for an op call or throws a RangeError listing what the device supports. @internal */
export function selectKernel(op: KernelFamily['op'], device: Device, dtype: DType, headDim: number): KernelFamily {
  const key = `${op}|${device}|${dtype}|${headDim}`;
  const known = selected.get(key);
  if (known) return known;
  const families = availableFamilies(device).filter((f) => f.op === op);
  const match = families.find((f) => f.dtypes.includes(dtype) && (f.headDims === 'any' || f.headDims.includes(headDim)));
  if (match) {
    selected.set(key, match);
    return match;
  }
  const offer = families.map((f) => `${f.dtypes.join('/')} with head dim ${f.headDims === 'any' ? 'any' : f.headDims.join('/')}`).join('; ');
  throw new RangeError(`${op} on ${device} has no kernel for dtype ${dtype} and head dim ${headDim} (supported: ${offer || 'none'})`);
}
