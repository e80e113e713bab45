// A warp emulated on the host for the test/native programs that compile device headers for the CPU:
// the CUDA qualifiers as nothing, threadIdx per thread, __shfl_xor_sync carried by a barrier, and the
// rounded float adds as plain adds (what __fadd_rn / __fsub_rn are). runWarp runs a body once per
// lane, each on its own thread with its own threadIdx.x. Include it before the device header.
#pragma once
#include <barrier>
#include <functional>
#include <thread>
#include <vector>

#define __device__
#define __host__
#define __forceinline__ inline

namespace {
struct ThreadIdx {
  int x = 0;
};
thread_local ThreadIdx threadIdx;
std::barrier<>* g_warp = nullptr;
float g_lanes[32];
}  // namespace

inline float __shfl_xor_sync(unsigned /*mask*/, float v, int m) {
  g_lanes[threadIdx.x & 31] = v;
  g_warp->arrive_and_wait();
  const float r = g_lanes[(threadIdx.x & 31) ^ m];
  g_warp->arrive_and_wait();
  return r;
}
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }

// body(lane) on 32 threads at once, threadIdx.x = lane: the shuffles above meet across them.
inline void runWarp(const std::function<void(int)>& body) {
  std::barrier<> warp(32);
  g_warp = &warp;
  std::vector<std::thread> lanes;
  for (int l = 0; l < 32; ++l)
    lanes.emplace_back([&body, l] {
      threadIdx.x = l;
      body(l);
    });
  for (std::thread& t : lanes) t.join();
  g_warp = nullptr;
}
