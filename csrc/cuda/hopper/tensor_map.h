// TMA tensor maps (host side) for the Hopper kernels.
#pragma once
#include <cuda.h>

#include <cstdint>

namespace attn::cuda::hopper {

// A 4-D map over a 16-bit tensor {dim (contiguous), rows, heads, batch} with element strides, read
// in boxes of {64, box_rows, 1, 1} with the 128-byte swizzle; rows past the end read as zeros.
// The driver's encoder is fetched through the runtime once, so the addon links no libcuda.
CUtensorMap makeTileMap(const void* base, int dim, int64_t rows, int heads, int batch, int64_t row_stride,
                        int64_t head_stride, int64_t batch_stride, int box_rows);

}  // namespace attn::cuda::hopper
