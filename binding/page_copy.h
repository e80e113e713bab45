// Copy-on-write of whole pages (pairs.src[i] -> pairs.dst[i]) in every plane of a pool's page
// arrays, on the pool's device: paged_ops.cc copies its K/V pool, mla_ops.cc its latent pool and,
// fp8, the scales beside it.
#pragma once
#include <cstdint>
#include <vector>

#include "params_reader.h"
#include "tensor_ref.h"

namespace binding {

// One array of pages: `planes` planes (a layer's K or V, or a layer) of pages of pageBytes bytes,
// planeStrideBytes apart.
struct PageArray {
  const TensorRef* array;
  int64_t pageBytes, planes, planeStrideBytes;
};

// Enqueues the copies on dev (nothing when pairs is empty).
void launchPageCopies(const attn::Device& dev, const PagePairs& pairs, const std::vector<PageArray>& arrays);

}  // namespace binding
