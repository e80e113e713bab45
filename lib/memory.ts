/** Memory statistics and cache control, and device synchronization. */
import { checkDevice, Device } from './device';
import { native } from './native';

/** Allocator counters of one device. */
export interface MemoryStats {
  /** Bytes held by live tensors. */
  allocatedBytes: number;
  /** Bytes obtained from the system or driver: allocated plus cached for reuse. */
  reservedBytes: number;
  peakAllocatedBytes: number;
  /** Storages not yet freed. */
  liveStorages: number;
  /** Allocation requests so far. */
  allocations: number;
  /** Requests served from the cache (CUDA only). */
  cacheHits: number;
}

/** Device memory: statistics and the caching allocator. */
export const memory = {
  /** Counters of the allocator of `device` (default `'cpu'`). */
  stats(device: Device = 'cpu'): MemoryStats {
    return native.memoryStats(checkDevice(device, 'device'));
  },
  /** Returns cached, unused device blocks to the driver (waits for the device's queued work). */
  emptyCache(device: Device = 'cpu'): void {
    native.emptyCache(checkDevice(device, 'device'));
  },
};

/** Resolves when every op enqueued so far on `device` has finished; rejects with its error. */
export function synchronize(device: Device = 'cpu'): Promise<void> {
  return native.synchronize(checkDevice(device, 'device'));
}
