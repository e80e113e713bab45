// pagedAppend: one fused kernel writes the new K and V rows into their pages.
// One CTA per new-token row r: it finds the row's sequence b by binary search over cu_new, looks
// up the page of position start_pos[b] + (r - cu_new[b]) once, then its threads copy every
// (K or V, head, 16-byte chunk) of the row. The vector width is the widest (16, 8, 4 or 2 bytes)
// that every pointer, stride and row size allows.
#include <cstdint>
#include <initializer_list>
#include <string>

#include "../../common/error.h"
#include "../check.h"
#include "../common/new_token.cuh"
#include "paged_attention.h"

namespace attn::cuda {
namespace {

constexpr int kAppendThreads = 128;

struct AppendArgs {
  const char* k;
  const char* v;
  char* k_pages;
  char* v_pages;
  int64_t k_row_stride, k_head_stride, v_row_stride, v_head_stride;  // bytes
  int64_t page_stride, page_head_stride;                              // bytes
  int64_t row_bytes;                                                  // head_dim * element size
  const int32_t* block_table;
  int64_t block_table_stride;
  const int32_t* block_table_rows;  // [batch] or null (row b)
  const int32_t* cu_new;
  const int32_t* start_pos;
  int batch;
  int heads_kv;
  int page_size;
};

template <typename V>
__global__ void __launch_bounds__(kAppendThreads) pagedAppendKernel(const AppendArgs a) {
  const int r = blockIdx.x;
  const auto [b, pos] = newTokenOf(a, r);
  if (pos < 0) return;
  const int64_t row = a.block_table_rows != nullptr ? __ldg(a.block_table_rows + b) : b;
  const int64_t page = __ldg(a.block_table + row * a.block_table_stride + pos / a.page_size);
  if (page < 0) return;
  const int64_t slot = pos % a.page_size;
  const int64_t dst_row = page * a.page_stride + slot * a.row_bytes;

  const int units = static_cast<int>(a.row_bytes / sizeof(V));  // per head
  const int per_tensor = units * a.heads_kv;
  for (int u = threadIdx.x; u < 2 * per_tensor; u += kAppendThreads) {
    const bool is_v = u >= per_tensor;
    const int w = is_v ? u - per_tensor : u;
    const int h = w / units, c = w - h * units;
    const char* src = is_v ? a.v + r * a.v_row_stride + h * a.v_head_stride
                           : a.k + r * a.k_row_stride + h * a.k_head_stride;
    char* dst = (is_v ? a.v_pages : a.k_pages) + dst_row + h * a.page_head_stride;
    reinterpret_cast<V*>(dst)[c] = __ldg(reinterpret_cast<const V*>(src) + c);
  }
}

// Largest power-of-two alignment (<= 16) shared by every value.
int commonAlignment(std::initializer_list<uint64_t> values) {
  uint64_t acc = 16;
  for (uint64_t v : values) {
    while (acc > 1 && (v % acc) != 0) acc >>= 1;
  }
  return static_cast<int>(acc);
}

}  // namespace

void pagedAppend(const PagedAppendParams& p, cudaStream_t stream) {
  if (p.quantized()) {
    pagedAppendQuant(p, stream);
    return;
  }
  if (p.dtype != DType::F32 && p.dtype != DType::F16 && p.dtype != DType::BF16)
    throwRange(std::string("pagedAppend: unsupported dtype ") + dtypeName(p.dtype) + " (f32, f16 or bf16)");
  if (p.total_new < 0 || p.batch < 0) throwRange("pagedAppend: total_new and batch must not be negative");
  if (p.total_new == 0 || p.batch == 0) return;
  if (p.heads_kv <= 0 || p.head_dim <= 0 || p.page_size <= 0)
    throwRange("pagedAppend: heads_kv, head_dim and page_size must be positive");
  if (!p.k || !p.v || !p.k_pages || !p.v_pages || !p.block_table || !p.cu_new || !p.start_pos)
    throwRange("pagedAppend: a required pointer is null");

  const int64_t esz = static_cast<int64_t>(dtypeSize(p.dtype));
  AppendArgs a{};
  a.k = static_cast<const char*>(p.k);
  a.v = static_cast<const char*>(p.v);
  a.k_pages = static_cast<char*>(p.k_pages);
  a.v_pages = static_cast<char*>(p.v_pages);
  a.k_row_stride = p.k_row_stride * esz;
  a.k_head_stride = p.k_head_stride * esz;
  a.v_row_stride = p.v_row_stride * esz;
  a.v_head_stride = p.v_head_stride * esz;
  a.page_stride = p.page_stride * esz;
  a.page_head_stride = p.page_head_stride * esz;
  a.row_bytes = p.head_dim * esz;
  a.block_table = p.block_table;
  a.block_table_stride = p.block_table_stride;
  a.block_table_rows = p.block_table_rows;
  a.cu_new = p.cu_new;
  a.start_pos = p.start_pos;
  a.batch = p.batch;
  a.heads_kv = p.heads_kv;
  a.page_size = p.page_size;

  auto u = [](int64_t x) { return static_cast<uint64_t>(x < 0 ? -x : x); };
  const int align = commonAlignment({reinterpret_cast<uintptr_t>(p.k), reinterpret_cast<uintptr_t>(p.v),
                                     reinterpret_cast<uintptr_t>(p.k_pages), reinterpret_cast<uintptr_t>(p.v_pages),
                                     u(a.k_row_stride), u(a.k_head_stride), u(a.v_row_stride), u(a.v_head_stride),
                                     u(a.page_stride), u(a.page_head_stride), u(a.row_bytes)});
  const dim3 grid(static_cast<unsigned>(p.total_new));
  switch (align) {
    case 16: pagedAppendKernel<uint4><<<grid, kAppendThreads, 0, stream>>>(a); break;
    case 8: pagedAppendKernel<uint2><<<grid, kAppendThreads, 0, stream>>>(a); break;
    case 4: pagedAppendKernel<uint32_t><<<grid, kAppendThreads, 0, stream>>>(a); break;
    case 2: pagedAppendKernel<uint16_t><<<grid, kAppendThreads, 0, stream>>>(a); break;
    default: pagedAppendKernel<unsigned char><<<grid, kAppendThreads, 0, stream>>>(a); break;
  }
  ATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace attn::cuda
