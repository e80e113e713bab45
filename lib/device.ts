/** Devices: the host CPU and CUDA GPUs. */
import { describe } from './errors';
import { native } from './native';

/** Where a tensor lives: `'cpu'` or `'cuda:N'`. */
export type Device = 'cpu' | `cuda:${number}`;

/** One CUDA device as the runtime reports it. */
export interface CudaDeviceInfo {
  /** Index N of `cuda:N`. */
  index: number;
  name: string;
  /** Compute capability as major*10+minor (90 for H100). */
  sm: number;
  multiprocessors: number;
  totalMemory: number;
  l2CacheBytes: number;
}

let cachedInfo: ReturnType<typeof native.info> | undefined;
function nativeInfo(): ReturnType<typeof native.info> {
  cachedInfo ??= native.info();
  return cachedInfo;
}

/** CUDA availability. */
export const cuda = {
  /** Whether this build has CUDA kernels and a CUDA device is usable. */
  isAvailable(): boolean {
    return nativeInfo().cudaAvailable;
  },
  /** Why CUDA is unavailable (build without nvcc, no driver, no device), or null when it is available. */
  unavailableReason(): string | null {
    const i = nativeInfo();
    return i.cudaAvailable ? null : i.cudaReason || 'unknown reason';
  },
  /** Whether the addon was compiled with CUDA kernels. */
  builtWithCuda(): boolean {
    return nativeInfo().builtWithCuda;
  },
  /** Number of usable CUDA devices. */
  deviceCount(): number {
    return nativeInfo().devices.length;
  },
  /** The usable CUDA devices. */
  devices(): CudaDeviceInfo[] {
    return nativeInfo().devices.map((d) => ({ ...d }));
  },
};

/** `'cuda:0'` when CUDA is available, `'cpu'` otherwise. */
export function defaultDevice(): Device {
  return cuda.isAvailable() ? 'cuda:0' : 'cpu';
}

/** Validates a device argument (the device must exist). @internal */
export function checkDevice(value: unknown, name: string): Device {
  if (typeof value !== 'string') throw new TypeError(`${name} must be 'cpu' or 'cuda:N', got ${describe(value)}`);
  if (value === 'cpu') return 'cpu';
  const m = /^cuda:(\d{1,3})$/.exec(value);
  if (!m) throw new RangeError(`${name} must be 'cpu' or 'cuda:N', got '${value}'`);
  const index = Number(m[1]);
  if (index >= cuda.deviceCount()) {
    const why = cuda.isAvailable() ? `only ${cuda.deviceCount()} CUDA device(s)` : cuda.unavailableReason();
    throw new RangeError(`${name} '${value}' is not available: ${why}`);
  }
  return value as Device;
}
