#include "tensor_map.h"

#include <cudaTypedefs.h>

#include <string>

#include "../../common/error.h"
#include "../check.h"

namespace attn::cuda::hopper {

namespace {

PFN_cuTensorMapEncodeTiled_v12000 encoder() {
  // A throwing initializer leaves the static unset, so a later call retries.
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    ATTN_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || ptr == nullptr) {
      throw Error(ErrorKind::Error, "the CUDA driver has no cuTensorMapEncodeTiled (needs CUDA 12+ drivers)");
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr);
  }();
  return fn;
}

// Byte stride of a dimension. A dimension of extent 1 is never stepped, but the encoder still wants
// a multiple of 16 there.
cuuint64_t byteStride(int64_t elems, int64_t extent) {
  const int64_t bytes = elems * 2;
  return extent == 1 && (bytes <= 0 || bytes % 16 != 0) ? 16 : static_cast<cuuint64_t>(bytes);
}

}  // namespace

CUtensorMap makeTileMap(const void* base, int dim, int64_t rows, int heads, int batch, int64_t row_stride,
                        int64_t head_stride, int64_t batch_stride, int box_rows) {
  CUtensorMap map;
  const cuuint64_t sizes[4] = {static_cast<cuuint64_t>(dim), static_cast<cuuint64_t>(rows),
                               static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(batch)};
  const cuuint64_t strides[3] = {byteStride(row_stride, rows),
                                 byteStride(head_stride, heads), byteStride(batch_stride, batch)};
  const cuuint32_t box[4] = {64, static_cast<cuuint32_t>(box_rows), 1, 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  // The element type only sets the size here (bf16 and f16 tiles are copied alike).
  const CUresult r = encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void*>(base), sizes, strides, box,
                               elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    throw Error(ErrorKind::Error, "CUDA error: cuTensorMapEncodeTiled failed with code " + std::to_string(r) +
                                      " (dim " + std::to_string(dim) + ", rows " + std::to_string(rows) + ")");
  }
  return map;
}

CUtensorMap makeBoxMap3d(const void* base, int elem_bytes, int64_t inner, int64_t rows, int64_t planes,
                         int64_t row_bytes, int64_t plane_bytes, int box_inner, int box_rows, int swizzle_bytes) {
  CUtensorMap map;
  const cuuint64_t sizes[3] = {static_cast<cuuint64_t>(inner), static_cast<cuuint64_t>(rows),
                               static_cast<cuuint64_t>(planes)};
  // A plane stride is never stepped when there is one plane, but must still be a multiple of 16.
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(row_bytes),
                                 static_cast<cuuint64_t>(planes == 1 && plane_bytes % 16 != 0 ? 16 : plane_bytes)};
  const cuuint32_t box[3] = {static_cast<cuuint32_t>(box_inner), static_cast<cuuint32_t>(box_rows), 1};
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  const CUtensorMapDataType type = elem_bytes == 1 ? CU_TENSOR_MAP_DATA_TYPE_UINT8 : CU_TENSOR_MAP_DATA_TYPE_UINT16;
  const CUtensorMapSwizzle swizzle = swizzle_bytes == 128 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_64B;
  const CUresult r = encoder()(&map, type, 3, const_cast<void*>(base), sizes, strides, box, elem_strides,
                               CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    throw Error(ErrorKind::Error, "CUDA error: cuTensorMapEncodeTiled failed with code " + std::to_string(r) +
                                      " (inner " + std::to_string(inner) + ", rows " + std::to_string(rows) +
                                      ", planes " + std::to_string(planes) + ")");
  }
  return map;
}

}  // namespace attn::cuda::hopper
