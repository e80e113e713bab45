#include "bench_hook.h"

#include "params_reader.h"

#ifdef ATTN_WITH_CUDA
#include "cuda/timing/event_timer.h"
#endif

namespace binding {

BenchHook::BenchHook(Napi::Object opt) : iters_(intOpt(opt, "benchIters", 0)) {}

void BenchHook::run(const CudaTarget& target, const std::function<void()>& launch) {
  if (iters_ <= 0) {
    launch();
    return;
  }
#ifdef ATTN_WITH_CUDA
  ms_ = attn::cuda::timeLaunches(target.stream, iters_, launch);
#else
  (void)target;
#endif
}

Napi::Value BenchHook::result(Napi::Env env) const {
  if (ms_ >= 0) return Napi::Number::New(env, ms_);
  return env.Undefined();
}

}  // namespace binding
