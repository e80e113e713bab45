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

// A 3-D map over a packed tensor {inner (contiguous), rows, planes} of 1- or 2-byte elements (byte
// strides of rows and planes), read in boxes of {box_inner, box_rows, 1} with the given swizzle
// (box_inner * elem_bytes must be the swizzle span: 64 or 128 bytes). For the workspaces of the
// quantized forward (int8 / e4m3 K, V^T).
CUtensorMap makeBoxMap3d(const void* base, int elem_bytes, int64_t inner, int64_t rows, int64_t planes,
                         int64_t row_bytes, int64_t plane_bytes, int box_inner, int box_rows, int swizzle_bytes);

}  // namespace attn::cuda::hopper
