// Host side of the Hopper MLA decode kernel (decode_sm90.cuh): (bf16) the tensor map over the
// layer's page pool, and the launch. Compiled for every gencode; the kernel has a body only in the
// sm_90a image.
#include <algorithm>

#include "../check.h"
#include "../hopper/tensor_map.h"
#include "../hopper/tile_store.cuh"
#include "decode_sm90.cuh"

namespace attn::cuda::mla::sm90 {

bool decodeAvailable() {
  static const bool loaded = hopper::sm90ImageOf(mlaDecodeSm90Kernel<false>);
  return loaded;
}

int smemBytes(bool fp8) { return fp8 ? Plan<true>::kSmemBytes : Plan<false>::kSmemBytes; }

void launchDecode(bool fp8, const MlaArgs& a, int64_t kv_rows, int page_size, unsigned grid_x, cudaStream_t stream) {
  KernelArgs args{};
  args.a = a;
  if (!fp8) {
    args.box_rows = std::min(page_size, kTileKeys);
    args.oob_row = static_cast<int>(kv_rows);
    // The pool as a 2-D tensor [kv rows, 576] (one plane): a box is one page piece of one 64-column chunk.
    args.kv = hopper::makeBoxMap3d(a.pages, 2, kMlaRow, kv_rows, 1, kRowBytes, kv_rows * kRowBytes, 64, args.box_rows, 128);
  }
  const auto kernel = fp8 ? mlaDecodeSm90Kernel<true> : mlaDecodeSm90Kernel<false>;
  const int smem = smemBytes(fp8);
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kernel<<<dim3(grid_x, static_cast<unsigned>(a.num_splits)), kThreads, smem, stream>>>(args);
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda::mla::sm90
