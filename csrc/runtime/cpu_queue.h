// The CPU "stream": one worker thread runs enqueued tasks in order, so CPU ops return at once and
// keep the same ordering semantics as work on a CUDA stream. Kernels inside a task fan out over
// the thread pool (cpu/parallel.h).
#pragma once
#include <functional>

#include "fence.h"

namespace attn {

// Enqueues a task. A task that throws records the error; the next fence's wait() rethrows it.
void cpuEnqueue(std::function<void()> task);

// A fence after everything enqueued so far.
FencePtr cpuFence();

}  // namespace attn
