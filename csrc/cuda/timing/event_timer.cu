#include "event_timer.h"

#include "../check.h"

namespace attn::cuda {

namespace {

// Owns one CUDA event.
class Event {
 public:
  Event() { ATTN_CUDA_CHECK(cudaEventCreate(&event_)); }
  ~Event() { cudaEventDestroy(event_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace

float timeLaunches(cudaStream_t stream, int iters, const std::function<void()>& launch) {
  if (iters <= 0) return 0.0f;
  Event start, stop;
  ATTN_CUDA_CHECK(cudaEventRecord(start.get(), stream));
  for (int i = 0; i < iters; ++i) launch();
  ATTN_CUDA_CHECK(cudaEventRecord(stop.get(), stream));
  ATTN_CUDA_CHECK(cudaEventSynchronize(stop.get()));
  float ms = 0.0f;
  ATTN_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
  return ms / static_cast<float>(iters);
}

}  // namespace attn::cuda
