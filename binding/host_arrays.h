// Small host arrays (cu_seqlens, ALiBi slopes, page lists) that an op needs on its device:
// kept in a host storage for CPU work or uploaded into a device storage (stream-ordered, so the
// storage may be dropped right after the launch that reads it).
#pragma once
#include <cstring>
#include <initializer_list>
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

// Several small arrays of one type in one storage, one upload for all of them: on a GPU each
// upload is a copy on the op's stream that its kernel waits behind, so a call with three arrays
// would queue three. at[i] gets array i's place in the storage (null for an empty array).
template <typename T>
attn::StoragePtr toDevicePacked(const attn::Device& d, std::initializer_list<const std::vector<T>*> arrays, std::initializer_list<const T**> at) {
  std::vector<T> packed;
  for (const std::vector<T>* a : arrays) packed.insert(packed.end(), a->begin(), a->end());
  attn::StoragePtr s = toDevice(d, packed);
  const T* base = static_cast<const T*>(s->data());
  size_t offset = 0;
  auto where = at.begin();
  for (const std::vector<T>* a : arrays) {
    if (where == at.end()) break;
    **where++ = a->empty() ? nullptr : base + offset;
    offset += a->size();
  }
  return s;
}

}  // namespace binding
