#include "cuda_context.h"

#include <algorithm>

#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "../../common/error.h"
#include "../../cuda/check.h"

namespace attn::cuda {
namespace {

struct Availability {
  int count = 0;
  std::string reason;
};

const Availability& availability() {
  static const Availability a = [] {
    Availability r;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      r.reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
      cudaGetLastError();
      return r;
    }
    if (n == 0) r.reason = "no CUDA device found";
    r.count = n;
    return r;
  }();
  return a;
}

size_t roundSize(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= (1u << 20)) return (bytes + 511) / 512 * 512;
  return (bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20);
}

class DeviceStorage final : public Storage {
 public:
  DeviceStorage(Context* ctx, void* p, size_t bytes, int index)
      : Storage(p, bytes, Device{Device::Kind::Cuda, index}), ctx_(ctx) {}
  ~DeviceStorage() override { ctx_->release(data(), bytes()); }

 private:
  Context* ctx_;
};

struct PinnedBlock {
  void* ptr = nullptr;
  size_t size = 0;
  cudaEvent_t lastUse = nullptr;  // recorded after the copy that used it
  bool busy = false;              // held by a download until its fence has copied out
};

}  // namespace

struct Context::Impl {
  std::mutex mu;
  std::multimap<size_t, void*> freeBlocks;         // rounded size -> cached device block
  std::unordered_map<void*, size_t> blockSizes;    // every block obtained from cudaMalloc
  MemoryStats stats;
  std::vector<std::unique_ptr<PinnedBlock>> pinned;
  // Small uploads (an op's argument arrays, every call) share staging blocks: see Context::upload.
  std::vector<std::unique_ptr<PinnedBlock>> stageBlocks;  // owner
  PinnedBlock* stage = nullptr;                            // the block being filled
  size_t stageUsed = 0;
  std::deque<PinnedBlock*> stageRetired;                   // full blocks, oldest first
  std::vector<unsigned*> counters;  // newest last; process lifetime like the context
  size_t counterCap = 0;
};

int deviceCount() { return availability().count; }
std::string unavailableReason() { return availability().reason; }

Context& Context::get(int index) {
  static std::mutex mu;
  static std::map<int, Context*> contexts;
  if (index < 0 || index >= deviceCount())
    throwRange("device: cuda:" + std::to_string(index) + " does not exist (" + std::to_string(deviceCount()) +
               " CUDA device(s)" + (deviceCount() == 0 ? ": " + unavailableReason() : std::string()) + ")");
  std::lock_guard<std::mutex> lock(mu);
  auto it = contexts.find(index);
  if (it != contexts.end()) return *it->second;
  Context* ctx = new Context(index);  // intentionally never deleted
  contexts[index] = ctx;
  return *ctx;
}

Context::Context(int index) : index_(index), impl_(new Impl()) {
  ATTN_CUDA_CHECK(cudaSetDevice(index));
  cudaDeviceProp p{};
  ATTN_CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  props_.name = p.name;
  props_.sm = p.major * 10 + p.minor;
  props_.multiprocessors = p.multiProcessorCount;
  props_.totalMemory = static_cast<int64_t>(p.totalGlobalMem);
  props_.maxSharedMemoryPerBlockOptin = static_cast<int>(p.sharedMemPerBlockOptin);
  props_.l2CacheBytes = p.l2CacheSize;
  ATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

void Context::activate() const { ATTN_CUDA_CHECK(cudaSetDevice(index_)); }

StoragePtr Context::allocate(size_t bytes) {
  activate();
  size_t size = roundSize(bytes);
  void* ptr = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stats.allocations += 1;
    auto it = impl_->freeBlocks.find(size);
    if (it != impl_->freeBlocks.end()) {
      ptr = it->second;
      impl_->freeBlocks.erase(it);
      impl_->stats.cacheHits += 1;
    }
  }
  if (!ptr) {
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the (non-sticky) allocation error, then retry on an empty cache
      emptyCache();
      err = cudaMalloc(&ptr, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t freeB = 0, totalB = 0;
      cudaMemGetInfo(&freeB, &totalB);
      throwError("CUDA out of memory: cannot allocate " + std::to_string(bytes) + " bytes on cuda:" +
                 std::to_string(index_) + " (" + std::to_string(freeB >> 20) + " MiB free of " +
                 std::to_string(totalB >> 20) + " MiB)");
    }
    ATTN_CUDA_CHECK(err);
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->blockSizes[ptr] = size;
    impl_->stats.reservedBytes += static_cast<int64_t>(size);
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stats.allocatedBytes += static_cast<int64_t>(size);
    impl_->stats.liveStorages += 1;
    if (impl_->stats.allocatedBytes > impl_->stats.peakAllocatedBytes)
      impl_->stats.peakAllocatedBytes = impl_->stats.allocatedBytes;
  }
  return std::make_shared<DeviceStorage>(this, ptr, bytes, index_);
}

unsigned* Context::splitCounters(size_t n) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (n > impl_->counterCap) {
    const size_t cap = std::max<size_t>({n, 2 * impl_->counterCap, 4096});
    activate();
    void* p = nullptr;
    ATTN_CUDA_CHECK(cudaMalloc(&p, cap * sizeof(unsigned)));
    impl_->counters.push_back(static_cast<unsigned*>(p));
    ATTN_CUDA_CHECK(cudaMemsetAsync(p, 0, cap * sizeof(unsigned), stream_));
    impl_->counterCap = cap;
  }
  return impl_->counters.back();
}

void Context::release(void* ptr, size_t bytes) noexcept {
  std::lock_guard<std::mutex> lock(impl_->mu);
  size_t size = impl_->blockSizes[ptr];
  impl_->freeBlocks.emplace(size, ptr);
  impl_->stats.allocatedBytes -= static_cast<int64_t>(size);
  impl_->stats.liveStorages -= 1;
}

MemoryStats Context::stats() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

void Context::emptyCache() {
  activate();
  // Cached blocks may still be read by enqueued work of their last owner: wait for the stream.
  ATTN_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [size, ptr] : impl_->freeBlocks) {
    cudaFree(ptr);
    impl_->blockSizes.erase(ptr);
    impl_->stats.reservedBytes -= static_cast<int64_t>(size);
  }
  impl_->freeBlocks.clear();
  // The stream is idle: every staging block is free again; all go.
  for (auto& b : impl_->stageBlocks) {
    cudaEventDestroy(b->lastUse);
    cudaFreeHost(b->ptr);
  }
  impl_->stageBlocks.clear();
  impl_->stageRetired.clear();
  impl_->stage = nullptr;
  impl_->stageUsed = 0;
  for (auto it = impl_->pinned.begin(); it != impl_->pinned.end();) {
    PinnedBlock& b = **it;
    if (!b.busy && cudaEventQuery(b.lastUse) == cudaSuccess) {
      cudaEventDestroy(b.lastUse);
      cudaFreeHost(b.ptr);
      it = impl_->pinned.erase(it);
    } else {
      ++it;
    }
  }
}

namespace {

// Finds an idle pinned block of at least `bytes` (whose last copy has finished) or makes one.
PinnedBlock* acquirePinned(std::vector<std::unique_ptr<PinnedBlock>>& pool, size_t bytes) {
  PinnedBlock* best = nullptr;
  for (auto& b : pool) {
    if (b->busy || b->size < bytes) continue;
    if (best && best->size <= b->size) continue;
    if (cudaEventQuery(b->lastUse) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    best = b.get();
  }
  if (best) return best;
  auto block = std::make_unique<PinnedBlock>();
  size_t size = 64 << 10;
  while (size < bytes) size <<= 1;
  ATTN_CUDA_CHECK(cudaHostAlloc(&block->ptr, size, cudaHostAllocDefault));
  block->size = size;
  ATTN_CUDA_CHECK(cudaEventCreateWithFlags(&block->lastUse, cudaEventDisableTiming));
  pool.push_back(std::move(block));
  return pool.back().get();
}

class EventFence final : public Fence {
 public:
  EventFence(int device, cudaEvent_t ev, std::function<void()> after) : device_(device), ev_(ev), after_(std::move(after)) {}
  ~EventFence() override { cudaEventDestroy(ev_); }
  void wait() override {
    ATTN_CUDA_CHECK(cudaSetDevice(device_));
    ATTN_CUDA_CHECK(cudaEventSynchronize(ev_));
    if (after_) {
      auto f = std::move(after_);
      after_ = nullptr;
      f();
    }
  }

 private:
  int device_;
  cudaEvent_t ev_;
  std::function<void()> after_;
};

}  // namespace

// A small upload takes the next slice of the current staging block: no event per upload and no
// search over blocks (a decode call's host time is a few microseconds of such work). A full block
// records one event and retires; retired blocks finish in stream order, so only the oldest needs a
// look when a new block is wanted.
void Context::upload(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  activate();
  std::lock_guard<std::mutex> lock(impl_->mu);
  constexpr size_t kStageBytes = 1 << 20, kSmall = kStageBytes / 16, kAlign = 256;
  if (bytes <= kSmall) {
    Impl& m = *impl_;
    const size_t slice = (bytes + kAlign - 1) / kAlign * kAlign;
    if (!m.stage || m.stageUsed + slice > m.stage->size) {
      if (m.stage) {
        ATTN_CUDA_CHECK(cudaEventRecord(m.stage->lastUse, stream_));
        m.stageRetired.push_back(m.stage);
      }
      m.stage = nullptr;
      if (!m.stageRetired.empty()) {
        const cudaError_t q = cudaEventQuery(m.stageRetired.front()->lastUse);
        if (q == cudaSuccess) {
          m.stage = m.stageRetired.front();
          m.stageRetired.pop_front();
        } else if (q != cudaErrorNotReady) {
          ATTN_CUDA_CHECK(q);
        } else {
          (void)cudaGetLastError();
        }
      }
      if (!m.stage) {
        auto block = std::make_unique<PinnedBlock>();
        ATTN_CUDA_CHECK(cudaHostAlloc(&block->ptr, kStageBytes, cudaHostAllocDefault));
        block->size = kStageBytes;
        ATTN_CUDA_CHECK(cudaEventCreateWithFlags(&block->lastUse, cudaEventDisableTiming));
        m.stage = block.get();
        m.stageBlocks.push_back(std::move(block));
      }
      m.stageUsed = 0;
    }
    char* at = static_cast<char*>(m.stage->ptr) + m.stageUsed;
    std::memcpy(at, src, bytes);
    ATTN_CUDA_CHECK(cudaMemcpyAsync(dst, at, bytes, cudaMemcpyHostToDevice, stream_));
    m.stageUsed += slice;
    return;
  }
  PinnedBlock* b = acquirePinned(impl_->pinned, bytes);
  std::memcpy(b->ptr, src, bytes);
  ATTN_CUDA_CHECK(cudaMemcpyAsync(dst, b->ptr, bytes, cudaMemcpyHostToDevice, stream_));
  ATTN_CUDA_CHECK(cudaEventRecord(b->lastUse, stream_));
}

FencePtr Context::download(const StoragePtr& keepAlive, const void* src, size_t bytes,
                           std::shared_ptr<std::vector<uint8_t>> out) {
  activate();
  PinnedBlock* b = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    b = acquirePinned(impl_->pinned, bytes == 0 ? 1 : bytes);
    b->busy = true;
  }
  if (bytes) ATTN_CUDA_CHECK(cudaMemcpyAsync(b->ptr, src, bytes, cudaMemcpyDeviceToHost, stream_));
  ATTN_CUDA_CHECK(cudaEventRecord(b->lastUse, stream_));
  cudaEvent_t ev;
  ATTN_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  ATTN_CUDA_CHECK(cudaEventRecord(ev, stream_));
  Impl* impl = impl_;
  StoragePtr hold = keepAlive;
  return std::make_shared<EventFence>(index_, ev, [impl, b, bytes, out, hold] {
    out->resize(bytes);
    std::memcpy(out->data(), b->ptr, bytes);
    std::lock_guard<std::mutex> lock(impl->mu);
    b->busy = false;
  });
}

FencePtr Context::fence() {
  activate();
  cudaEvent_t ev;
  ATTN_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  ATTN_CUDA_CHECK(cudaEventRecord(ev, stream_));
  return std::make_shared<EventFence>(index_, ev, nullptr);
}

}  // namespace attn::cuda
