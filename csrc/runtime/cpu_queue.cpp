#include "cpu_queue.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <thread>

namespace attn {
namespace {

class CpuQueue {
 public:
  CpuQueue() : worker_([this] { run(); }) { worker_.detach(); }

  void push(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  // Called on the worker thread only: the error of the latest failing task, taken by a fence.
  std::exception_ptr takeError() {
    std::exception_ptr e = error_;
    error_ = nullptr;
    return e;
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      try {
        task();
      } catch (...) {
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::exception_ptr error_;  // touched only by the worker thread
  std::thread worker_;
};

// Never destroyed: the detached worker may outlive static destruction at process exit.
CpuQueue& queue() {
  static CpuQueue* q = new CpuQueue();
  return *q;
}

class CpuFence final : public Fence {
 public:
  explicit CpuFence(std::shared_future<std::exception_ptr> done) : done_(std::move(done)) {}
  void wait() override {
    std::exception_ptr e = done_.get();
    if (e) std::rethrow_exception(e);
  }

 private:
  std::shared_future<std::exception_ptr> done_;
};

}  // namespace

void cpuEnqueue(std::function<void()> task) { queue().push(std::move(task)); }

FencePtr cpuFence() {
  auto promise = std::make_shared<std::promise<std::exception_ptr>>();
  std::shared_future<std::exception_ptr> fut = promise->get_future().share();
  queue().push([promise] { promise->set_value(queue().takeError()); });
  return std::make_shared<CpuFence>(std::move(fut));
}

}  // namespace attn
