#include "event_timer.h"

#include <exception>

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

// Owns a captured graph and its executable.
class Graph {
 public:
  Graph(cudaStream_t stream, int iters, const std::function<void()>& launch) {
    ATTN_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    std::exception_ptr failure;
    try {
      for (int i = 0; i < iters; ++i) launch();
    } catch (...) {
      failure = std::current_exception();
    }
    // Capture always ends, so the stream stays usable whatever failed.
    cudaError_t err = cudaStreamEndCapture(stream, &graph_);
    if (!failure && err == cudaSuccess) err = cudaGraphInstantiate(&exec_, graph_, 0);
    if (failure || err != cudaSuccess) {
      if (graph_ != nullptr) cudaGraphDestroy(graph_);
      if (failure) std::rethrow_exception(failure);
      ATTN_CUDA_CHECK(err);
    }
  }
  ~Graph() {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
    if (graph_ != nullptr) cudaGraphDestroy(graph_);
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  cudaGraphExec_t get() const { return exec_; }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace

float timeLaunches(cudaStream_t stream, int iters, const std::function<void()>& launch) {
  if (iters <= 0) return 0.0f;
  Graph graph(stream, iters, launch);
  ATTN_CUDA_CHECK(cudaGraphLaunch(graph.get(), stream));  // warm-up (first replay uploads the graph)
  Event start, stop;
  ATTN_CUDA_CHECK(cudaEventRecord(start.get(), stream));
  ATTN_CUDA_CHECK(cudaGraphLaunch(graph.get(), stream));
  ATTN_CUDA_CHECK(cudaEventRecord(stop.get(), stream));
  ATTN_CUDA_CHECK(cudaEventSynchronize(stop.get()));
  float ms = 0.0f;
  ATTN_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
  return ms / static_cast<float>(iters);
}

}  // namespace attn::cuda
