/** What this installation can do: build, devices, kernels. */
import { cuda, CudaDeviceInfo, defaultDevice, Device } from './device';
import { availableFamilies, KernelFamily } from './kernels';
import { native } from './native';

/** Summary returned by {@link info}. */
export interface AttnInfo {
  version: string;
  builtWithCuda: boolean;
  cudaAvailable: boolean;
  /** Why CUDA is unavailable, or null. */
  cudaReason: string | null;
  cpuThreads: number;
  devices: CudaDeviceInfo[];
  defaultDevice: Device;
  /** Kernel families usable on each device. */
  kernels: Record<string, KernelFamily[]>;
}

/** Describes the build, the devices found and the kernels usable on each. */
export function info(): AttnInfo {
  const n = native.info();
  const devices = cuda.devices();
  const kernels: Record<string, KernelFamily[]> = { cpu: availableFamilies('cpu') };
  for (const d of devices) kernels[`cuda:${d.index}`] = availableFamilies(`cuda:${d.index}`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const version = (require('../package.json') as { version: string }).version;
  return {
    version,
    builtWithCuda: n.builtWithCuda,
    cudaAvailable: n.cudaAvailable,
    cudaReason: cuda.unavailableReason(),
    cpuThreads: n.cpuThreads,
    devices,
    defaultDevice: defaultDevice(),
    kernels,
  };
}
