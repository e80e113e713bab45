// Benchmark hook of the attention ops (scripts/; never used by lib/): with options.benchIters > 0 an
// op launches its kernels benchIters times back to back and returns the device ms per launch,
// measured by CUDA events free of JS call overhead. Blocks the calling thread.
#pragma once
#include <napi.h>

#include <functional>

#include "device_exec.h"

namespace binding {

class BenchHook {
 public:
  explicit BenchHook(Napi::Object opt);
  int iters() const { return iters_; }
  // CUDA path: launch() once, or time iters() launches of it.
  void run(const CudaTarget& target, const std::function<void()>& launch);
  // Device ms per launch of the last timed run, -1 when none was timed.
  double ms() const { return ms_; }
  // The op's result: the ms when timed, else undefined.
  Napi::Value result(Napi::Env env) const;

 private:
  int iters_ = 0;
  double ms_ = -1.0;
};

}  // namespace binding
