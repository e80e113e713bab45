// A process-wide pool of worker threads for CPU kernels.
#pragma once
#include <cstdint>
#include <functional>

namespace attn::cpu {

// Number of threads kernels split work across (ATTN_CPU_THREADS overrides the core count).
int threadCount();

// Runs fn(begin, end) over [0, n) in chunks of at least `grain` items on the pool and waits.
// The calling thread takes part. Exceptions from fn are rethrown on the caller (the first one).
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace attn::cpu
