#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace attn::cpu {
namespace {

// A fixed pool; one parallelFor runs at a time (callers are the CPU queue's single worker, or
// tests), further callers wait their turn on run_mu_.
class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n_; ++i) std::thread([this] { worker(); }).detach();
  }
  int size() const { return n_; }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    int64_t chunks = (n + grain - 1) / grain;
    if (n_ == 1 || chunks == 1) {
      fn(0, n);
      return;
    }
    // Several chunks per thread balance uneven work (e.g. causal rows).
    int64_t chunk = std::max<int64_t>(grain, n / (static_cast<int64_t>(n_) * 4));
    std::lock_guard<std::mutex> run_lock(run_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &fn;
      total_ = n;
      chunk_ = chunk;
      next_.store(0);
      pending_ = n_ - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    for (;;) {
      int64_t begin = next_.fetch_add(chunk_);
      if (begin >= total_) return;
      int64_t end = std::min(total_, begin + chunk_);
      try {
        (*job_)(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
        next_.store(total_);
      }
    }
  }

  void worker() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
      }
      work();
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (--pending_ == 0) done_cv_.notify_one();
      }
    }
  }

  int n_;
  std::mutex run_mu_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t total_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
  int pending_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr error_;
};

int configuredThreads() {
  if (const char* env = std::getenv("ATTN_CPU_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return std::min(n, 256);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

Pool& pool() {
  static Pool* p = new Pool(configuredThreads());  // never destroyed: workers are detached
  return *p;
}

}  // namespace

int threadCount() { return pool().size(); }

void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run(n, grain, fn);
}

int partsForThreads(int64_t units, int max_parts) {
  int parts = 1;
  while (parts < max_parts && units * parts < 2LL * threadCount()) parts *= 2;
  while (max_parts % parts != 0) --parts;  // doubling may step past a divisor
  return parts;
}

}  // namespace attn::cpu
