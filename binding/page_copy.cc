#include "page_copy.h"

#include <memory>

#include "common/paged_params.h"
#include "cpu/paged_attention.h"
#include "device_exec.h"
#include "host_arrays.h"

#ifdef ATTN_WITH_CUDA
#include "cuda/paged/paged_attention.h"
#endif

namespace binding {

void launchPageCopies(const attn::Device& dev, const PagePairs& pairs, const std::vector<PageArray>& arrays) {
  if (pairs.src.empty()) return;
  const int32_t* src = nullptr;
  const int32_t* dst = nullptr;
  attn::StoragePtr pairsS = toDevicePacked<int32_t>(dev, {&pairs.src, &pairs.dst}, {&src, &dst});
  auto holds = std::make_shared<std::vector<attn::StoragePtr>>(std::vector<attn::StoragePtr>{pairsS});
  std::vector<attn::PageCopyParams> copies;
  for (const PageArray& a : arrays) {
    attn::PageCopyParams p;
    p.pool = a.array->data();
    p.page_bytes = a.pageBytes;
    p.planes = a.planes;
    p.plane_stride_bytes = a.planeStrideBytes;
    p.count = static_cast<int>(pairs.src.size());
    p.src = src;
    p.dst = dst;
    copies.push_back(p);
    holds->push_back(a.array->storage);
  }
  launch(dev, [copies, holds] { for (const auto& p : copies) attn::cpu::copyPages(p); }, [&](const CudaTarget& c) {
#ifdef ATTN_WITH_CUDA
    for (const auto& p : copies) attn::cuda::copyPages(p, c.stream);
#else
    (void)c;
#endif
  });
}

}  // namespace binding
