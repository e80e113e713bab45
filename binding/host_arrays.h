// Small host arrays (cu_seqlens, ALiBi slopes, page lists) that an op needs on its device:
// kept in a host storage for CPU work or uploaded into a device storage (stream-ordered, so the
// storage may be dropped right after the launch that reads it).
#pragma once
#include <cstring>
#include <vector>

#include "device_exec.h"

namespace binding {

template <typename T>
attn::StoragePtr toDevice(const attn::Device& d, const std::vector<T>& values) {
  size_t bytes = values.size() * sizeof(T);
  attn::StoragePtr s = allocate(d, bytes == 0 ? sizeof(T) : bytes);
  if (bytes == 0) return s;
  if (d.isCuda()) {
    std::vector<uint8_t> raw(bytes);
    std::memcpy(raw.data(), values.data(), bytes);
    upload(d, s, 0, std::move(raw));
  } else {
    std::memcpy(s->data(), values.data(), bytes);
  }
  return s;
}

}  // namespace binding
