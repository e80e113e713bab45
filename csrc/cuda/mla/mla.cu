// MLA entry points: support check, CTA shape and split choice, workspace size, dispatch of the
// decode kernel (decode_sm90.cu on Hopper where it applies, else decode_m16.cu / decode_m64.cu) and,
// with more than one split, of the paged combine kernel (csrc/cuda/paged/combine.cu: the value width
// is its head_dim, here 512).
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../../common/error.h"
#include "../check.h"
#include "../common/launch_args.h"
#include "../paged/paged_internal.h"
#include "../paged/split_workspace.h"
#include "decode_sm90.h"
#include "mla.h"
#include "mla_internal.h"

namespace attn::cuda {
namespace {

bool isPow2(int x) { return x > 0 && (x & (x - 1)) == 0; }
bool aligned(const void* p, uintptr_t n) { return (reinterpret_cast<uintptr_t>(p) % n) == 0; }

struct DeviceLimits {
  int optin = 0;    // shared memory one block may opt into
  int per_sm = 0;   // shared memory of one SM
  int sms = 0;
  int cc = 0;       // compute capability, 10 * major + minor
};

DeviceLimits deviceLimits() {
  int device = 0;
  DeviceLimits d;
  ATTN_CUDA_CHECK(cudaGetDevice(&device));
  ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&d.optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&d.per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device));
  ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, device));
  int major = 0, minor = 0;
  ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  d.cc = 10 * major + minor;
  return d;
}

bool isFp8(const MlaAttnParams& p) { return p.cache.dtype == DType::FP8E4M3; }

int64_t rowsPerSequence(const MlaAttnParams& p) { return (p.cu_seqlens_q ? std::max(p.max_seqlen_q, 0) : 1) * static_cast<int64_t>(p.heads); }

int64_t kvRows(const MlaAttnParams& p) { return p.cache.num_pages * static_cast<int64_t>(p.cache.page_size); }

// Whether the wgmma kernel (decode_sm90.h) can run this call at 64 rows per CTA: an sm_90 device
// whose build has the sm_90a image, pages of 16 keys or more, a pool whose rows fit the TMA map's
// int32 coordinates, (fp8) 16-byte aligned scales for the bulk copies. MlaAttnParams::force_mma
// (tests, benchmarks) forces the mma.sync kernel.
bool sm90Fits(const MlaAttnParams& p, const DeviceLimits& d) {
  if (p.force_mma) return false;
  const int64_t rows = kvRows(p);
  return d.cc == 90 && p.cache.page_size >= mla::sm90::kMinPageSize && rows > 0 && rows <= INT_MAX - mla::sm90::kTileKeys &&
         d.optin >= mla::sm90::smemBytes(isFp8(p)) && (!isFp8(p) || aligned(p.cache.scales, 16)) && mla::sm90::decodeAvailable();
}

// 64 rows per CTA once a sequence has 32 (query, head) rows or more and the device fits it
// (not sm_86/89's 99 KB); 16 otherwise: padding 16 heads to 64 would quadruple the MMA work of
// the memory-bound case. An fp8 cache takes 64 (the wgmma kernel) wherever that kernel runs: even
// padded, that is 1.07x the mma.sync kernel's M = 16 at 16 heads (runs 84-85).
int rowsPerCta(const MlaAttnParams& p, const DeviceLimits& d) {
  if (isFp8(p) && sm90Fits(p, d)) return 64;
  return rowsPerSequence(p) >= 32 && mla::smemBytes(64, isFp8(p), 2) <= d.optin ? 64 : 16;
}

int64_t mblocksOf(const MlaAttnParams& p, int m) { return (rowsPerSequence(p) + m - 1) / m; }

// Deepest pipeline such that `ctas` CTAs share an SM; 0 when none fits.
int stagesFor(int m, bool fp8, int ctas, const DeviceLimits& d) {
  for (int s = mla::maxStages(m, fp8); s >= 2; --s) {
    const int bytes = mla::smemBytes(m, fp8, s);
    if (bytes <= d.optin && ctas * (bytes + 1024) <= d.per_sm) return s;  // 1 KB per CTA is reserved
  }
  return 0;
}

// The wgmma kernel (decode_sm90.h) takes the 64-row CTAs where it fits; the mma.sync kernel the rest.
bool useSm90(const MlaAttnParams& p, int m, const DeviceLimits& d) { return m == 64 && sm90Fits(p, d); }

}  // namespace

bool mlaAttentionSupported(const MlaAttnParams& p, std::string* why) {
  auto fail = [&](const std::string& msg) {
    if (why) *why = msg;
    return false;
  };
  if (p.dtype != DType::BF16) return fail(std::string("queries must be bf16, got ") + dtypeName(p.dtype));
  if (p.cache.dtype != DType::BF16 && p.cache.dtype != DType::FP8E4M3)
    return fail(std::string("cache dtype ") + dtypeName(p.cache.dtype) + " is not supported (bf16 or fp8e4m3)");
  if (!isPow2(p.cache.page_size)) return fail("page_size " + std::to_string(p.cache.page_size) + " is not a power of two");
  if (p.heads <= 0) return fail("heads must be positive");
  if (p.batch < 0 || p.total_q < 0) return fail("batch and total_q must not be negative");
  if (p.cu_seqlens_q == nullptr && p.total_q != p.batch) return fail("without cu_seqlens_q, total_q must equal batch");
  if (p.cu_seqlens_q != nullptr && p.total_q > 0 && p.max_seqlen_q <= 0) return fail("max_seqlen_q must be positive with cu_seqlens_q");
  if (p.batch > 0 && p.total_q > 0 && (!p.q || !p.o || !p.cache.pages || !p.cache.block_table || !p.seq_lens || (isFp8(p) && !p.cache.scales)))
    return fail("q, o, the pages, block_table and seq_lens must be set");
  if (!aligned(p.q, 16) || !aligned(p.o, 16) || !aligned(p.cache.pages, 16) || !aligned(p.cache.scales, 8))
    return fail("q, o and the pages must be 16-byte aligned");
  for (int64_t s : {p.q_row_stride, p.q_head_stride, p.o_row_stride, p.o_head_stride})
    if (s % 8 != 0) return fail("q and out row and head strides must be multiples of 8 elements");
  if (p.num_splits > mla::kMaxSplits) return fail("num_splits exceeds " + std::to_string(mla::kMaxSplits));
  const DeviceLimits d = deviceLimits();
  if (stagesFor(16, isFp8(p), 1, d) == 0)
    return fail("the kernel needs " + std::to_string(mla::smemBytes(16, isFp8(p), 2)) + " bytes of shared memory per block, the device allows " +
                std::to_string(d.optin));
  if (static_cast<int64_t>(p.batch) * mblocksOf(p, rowsPerCta(p, d)) > INT_MAX) return fail("grid too large");
  if (why) why->clear();
  return true;
}

int mlaChooseSplits(const MlaAttnParams& p, int num_sms) {
  if (p.batch <= 0 || num_sms <= 0) return 1;
  const int max_splits = paged::maxSplitsByLength(p.max_seqlen_k, mla::kMinKeysPerSplit, mla::kMaxAutoSplits);
  if (max_splits <= 1) return 1;
  const int64_t units = static_cast<int64_t>(p.batch) * mblocksOf(p, rowsPerCta(p, deviceLimits()));
  // A wave is one CTA per SM.
  return paged::waveBalancedSplits(units, max_splits, num_sms, num_sms, 0.85);
}

int64_t mlaWorkspaceFloats(const MlaAttnParams& p) {
  if (p.num_splits <= 1) return 0;
  return static_cast<int64_t>(p.num_splits) * p.total_q * p.heads * (kMlaLatent + 1);
}

void mlaAttention(const MlaAttnParams& p, cudaStream_t stream) {
  std::string why;
  if (!mlaAttentionSupported(p, &why)) throwRange("mlaDecode: " + why);
  if (p.batch == 0 || p.total_q == 0) return;
  const DeviceLimits d = deviceLimits();
  const bool fp8 = isFp8(p);

  const int64_t per_split = static_cast<int64_t>(p.total_q) * p.heads * (kMlaLatent + 1);
  const int splits = paged::resolveSplits("mlaDecode", p.num_splits, [&] { return mlaChooseSplits(p, d.sms); }, per_split, p.workspace,
                                           p.workspace_floats);

  const int m = rowsPerCta(p, d);
  mla::MlaArgs a{};
  setQueryArgs(a, p);
  mla::setCacheArgs(a, p.cache);
  a.seq_lens = p.seq_lens;
  a.batch = p.batch;
  a.total_q = p.total_q;
  a.heads = p.heads;
  a.mblocks = static_cast<int>(mblocksOf(p, m));
  setScoreArgs(a, p.scale, p.softcap);
  a.causal = p.causal ? 1 : 0;
  a.num_splits = splits;
  a.ws_o = splits > 1 ? p.workspace : nullptr;
  a.ws_lse = splits > 1 ? p.workspace + static_cast<int64_t>(splits) * p.total_q * p.heads * kMlaLatent : nullptr;

  const unsigned grid_x = static_cast<unsigned>(static_cast<int64_t>(p.batch) * a.mblocks);
  if (useSm90(p, m, d)) {
    mla::sm90::launchDecode(fp8, a, kvRows(p), p.cache.page_size, grid_x, stream);
  } else {
    // One CTA per SM (deep pipeline) when the grid fits the SMs; otherwise two share an SM if they fit.
    const bool crowded = static_cast<int64_t>(grid_x) * splits > d.sms;
    a.stages = crowded ? stagesFor(m, fp8, 2, d) : 0;
    if (a.stages == 0) a.stages = stagesFor(m, fp8, 1, d);
    if (a.stages == 0) throwRange("mlaDecode: the device has too little shared memory for the kernel");
    if (m == 64) mla::launchDecodeM64(fp8, a, grid_x, stream);
    else mla::launchDecodeM16(fp8, a, grid_x, stream);
  }

  if (splits > 1) {
    paged::DecodeArgs c{};
    c.o = p.o;
    c.lse = p.lse;
    c.o_row_stride = p.o_row_stride;
    c.o_head_stride = p.o_head_stride;
    c.total_q = p.total_q;
    c.heads_q = p.heads;
    c.head_dim = kMlaLatent;  // the combine's value width
    c.num_splits = splits;
    c.ws_o = a.ws_o;
    c.ws_lse = a.ws_lse;
    paged::launchCombine(DType::BF16, c, stream);
  }
}

}  // namespace attn::cuda
