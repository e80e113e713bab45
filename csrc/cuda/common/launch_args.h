// Host side: fields that several launchers fill alike in their kernels' argument blocks. The
// templates take any argument block and params with the named fields: the split-KV decode
// kernels' paged::DecodeArgs and mla::MlaArgs from PagedAttnParams and MlaAttnParams.
#pragma once

namespace attn::cuda {

// log2 of a power-of-two page size: the kernels find a key's page with a shift.
inline int pageShift(int page_size) {
  int shift = 0;
  while ((1 << shift) < page_size) ++shift;
  return shift;
}

// The block table of the sequences' pages and the page size as a shift, which PagedAttnParams and
// MlaCacheView name alike.
template <typename Args, typename Table>
void setBlockTableArgs(Args& a, const Table& t) {
  a.block_table = t.block_table;
  a.block_table_stride = t.block_table_stride;
  a.block_table_rows = t.block_table_rows;
  a.page_shift = pageShift(t.page_size);
}

// q, o, lse, their row and head strides, and the query row offsets.
template <typename Args, typename Params>
void setQueryArgs(Args& a, const Params& p) {
  a.q = p.q;
  a.o = p.o;
  a.lse = p.lse;
  a.q_row_stride = p.q_row_stride;
  a.q_head_stride = p.q_head_stride;
  a.o_row_stride = p.o_row_stride;
  a.o_head_stride = p.o_head_stride;
  a.cu_q = p.cu_seqlens_q;
}

// The kernels score in base 2: q.k * scale_log2, or with a softcap softcap_log2 * tanh(q.k *
// softcap_scale), so that exp2 of the score is the softmax weight.
template <typename Args>
void setScoreArgs(Args& a, float scale, float softcap) {
  constexpr float kLog2e = 1.4426950408889634f;
  a.scale_log2 = scale * kLog2e;
  a.has_softcap = softcap > 0.0f ? 1 : 0;
  a.softcap_scale = a.has_softcap ? scale / softcap : 0.0f;
  a.softcap_log2 = a.has_softcap ? softcap * kLog2e : 0.0f;
}

}  // namespace attn::cuda
