// A block of memory on one device, shared by every tensor view of it and by enqueued work that
// reads or writes it (tasks hold a shared_ptr, so disposing a tensor while work is pending is safe).
#pragma once
#include <cstddef>
#include <memory>

#include "device.h"
#include "memory_stats.h"

namespace attn {

class Storage {
 public:
  virtual ~Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  const Device& device() const { return device_; }

 protected:
  Storage(void* data, size_t bytes, Device device) : data_(data), bytes_(bytes), device_(device) {}

 private:
  void* data_;
  size_t bytes_;
  Device device_;
};

using StoragePtr = std::shared_ptr<Storage>;

// Host memory, 64-byte aligned. Throws RangeError when the allocation fails.
StoragePtr allocateHost(size_t bytes);
MemoryStats hostMemoryStats();

}  // namespace attn
