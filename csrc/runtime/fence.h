// A point in a device's queue of work: wait() blocks (off the JS thread) until everything enqueued
// before the fence has run, and rethrows a failure of that work.
#pragma once
#include <memory>

namespace attn {

class Fence {
 public:
  virtual ~Fence() = default;
  virtual void wait() = 0;
};

using FencePtr = std::shared_ptr<Fence>;

}  // namespace attn
