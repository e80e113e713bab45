// A tensor as native code sees it, parsed from the JS Tensor's fields and bounds-checked against
// its storage, so a bad descriptor throws instead of touching memory out of range.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "common/dtype.h"
#include "runtime/storage.h"

namespace binding {

struct TensorRef {
  attn::StoragePtr storage;
  attn::DType dtype = attn::DType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  int64_t offset = 0;  // elements

  const attn::Device& device() const { return storage->device(); }
  int64_t numel() const;
  bool contiguous() const;
  char* data() const { return static_cast<char*>(storage->data()) + offset * attn::dtypeSize(dtype); }
  int64_t stride(int d) const { return strides[static_cast<size_t>(d)]; }
};

// Reads {storage, dtype, shape, strides, offset} from a JS Tensor; `what` names the argument.
TensorRef tensorRef(Napi::Value value, const std::string& what);
// Same, or an empty optional when value is null/undefined.
bool optionalTensorRef(Napi::Value value, const std::string& what, TensorRef* out);

attn::Device parseDevice(Napi::Value value, const char* what);

}  // namespace binding
