// The float workspace a split-KV attention launch writes its partial outputs to (the CUDA paths of
// paged_ops.cc and mla_ops.cc; the kernel's *WorkspaceFloats says how large).
#pragma once
#include <cstdint>

#include "device_exec.h"

namespace binding {

// Points p.workspace at `floats` floats on dev, or leaves it unset when floats is 0 (one split).
// The block is stream-ordered: it returns to the device's cache once the caller drops the
// returned storage after its launch, and is reused in stream order.
template <typename Params>
attn::StoragePtr attachSplitWorkspace(const attn::Device& dev, Params& p, int64_t floats) {
  if (floats <= 0) return nullptr;
  attn::StoragePtr ws = allocate(dev, static_cast<size_t>(floats) * sizeof(float));
  p.workspace = static_cast<float*>(ws->data());
  p.workspace_floats = floats;
  return ws;
}

}  // namespace binding
