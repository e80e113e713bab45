// A process-wide pool of worker threads for CPU kernels.
#pragma once
#include <cstdint>
#include <functional>

namespace attn::cpu {

// Number of threads kernels split work across (ATTN_CPU_THREADS overrides the core count).
int threadCount();

// How many parts to cut each of `units` work units into, a divisor of `max_parts` and as few as
// leave the pool at least two items per thread (kernels that share loads within a unit, e.g. a
// KV group's query heads, give up that sharing only when the threads would otherwise idle).
int partsForThreads(int64_t units, int max_parts);

// Runs fn(begin, end) over [0, n) in chunks of at least `grain` items on the pool and waits.
// The calling thread takes part. Exceptions from fn are rethrown on the caller (the first one).
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace attn::cpu
