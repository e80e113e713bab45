#!/usr/bin/env python3
"""Throughput of wgmma shapes on this GPU (sm_90a): which N, operand source and warpgroup count
reach the tensor-core peak. Generates a standalone .cu, builds it with nvcc and prints TFLOP/s.

  python3 scripts/wgmma_rate.py [workdir]

Why: the MLA decode kernel's S = Q K^T is an m64n32k16 wgmma with both operands in shared memory;
whether that shape is held back by shared-memory bandwidth (A is re-read for every 32 columns)
decides how the kernel should split its work. One CTA per SM, 1 or 2 warpgroups issuing batches
of 16 wgmmas (commit, wait) from shared memory filled with small random values.
"""
import os
import subprocess
import sys

SHAPES = [  # (name, n, kind): kind ss = A, B K-major in smem; sst = B MN-major; rs = A in registers
    ("ss", 32, "ss"), ("ss", 64, "ss"), ("ss", 128, "ss"), ("ss", 256, "ss"),
    ("sst", 256, "sst"), ("rs", 64, "rs"), ("rs", 256, "rs"),
]


def wgmma_fn(n, kind):
    regs = n // 2
    outs = ", ".join(f"%{i}" for i in range(regs))
    cons = ", ".join(f'"+f"(d[{i}])' for i in range(regs))
    if kind == "rs":
        a = f"{{%{regs}, %{regs + 1}, %{regs + 2}, %{regs + 3}}}"
        b = f"%{regs + 4}"
        tail = "1, 1, 1, 1" if False else "1, 1, 1"  # scale-a, scale-b, tnspB (B MN-major)
        ins = '"r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b)'
        sig = f"float (&d)[{regs}], const uint32_t (&a)[4], uint64_t b"
        body = f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.bf16.bf16 {{{outs}}}, {a}, {b}, p, 1, 1, 1;"
    else:
        tnsp = 1 if kind == "sst" else 0
        ins = '"l"(a), "l"(b)'
        sig = f"float (&d)[{regs}], uint64_t a, uint64_t b"
        body = f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.bf16.bf16 {{{outs}}}, %{regs}, %{regs + 1}, p, 1, 1, 0, {tnsp};"
    return (f"__device__ __forceinline__ void mma_{kind}_{n}({sig}) {{\n"
            f'  asm volatile("{{\\n.reg .pred p;\\nsetp.ne.b32 p, 1, 0;\\n{body}\\n}}\\n" : {cons} : {ins});\n}}\n')


def kernel(n, kind):
    regs = n // 2
    if kind == "rs":
        call = f"mma_{kind}_{n}(d, ra, desc(sB + (k & 3) * 2048, 8192, 1024));"
    elif kind == "sst":
        call = f"mma_{kind}_{n}(d, desc(sA + (k & 3) * 32, 16, 1024), desc(sB + (k & 3) * 2048, 8192, 1024));"
    else:
        call = f"mma_{kind}_{n}(d, desc(sA + (k & 3) * 32, 16, 1024), desc(sB + (k & 3) * 32, 16, 1024));"
    return f"""
__global__ void __launch_bounds__(256, 1) k_{kind}_{n}(int iters, int wgs, float* sink) {{
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = (static_cast<uint32_t>(__cvta_generic_to_shared(smem)) + 1023) & ~1023u;
  for (int i = threadIdx.x; i < 160 * 1024 / 4; i += blockDim.x)
    reinterpret_cast<uint32_t*>(smem)[i] = 0x3c003c00u ^ (i * 2654435761u & 0x00ff00ffu);
  __syncthreads();
  if (static_cast<int>(threadIdx.x / 128) >= wgs) return;
  const uint32_t sA = base, sB = base + 65536;
  float d[{regs}];
  for (int i = 0; i < {regs}; ++i) d[i] = 0.0f;
  uint32_t ra[4] = {{0x3c003c00u, 0x3c003c00u, 0x3c003c00u, 0x3c003c00u}};
  for (int it = 0; it < iters; ++it) {{
    asm volatile("wgmma.fence.sync.aligned;\\n" ::: "memory");
#pragma unroll
    for (int k = 0; k < 16; ++k) {{ {call} }}
    asm volatile("wgmma.commit_group.sync.aligned;\\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
  }}
  float s = 0.0f;
  for (int i = 0; i < {regs}; ++i) s += d[i];
  if (s == 1234.5f) sink[0] = s;
}}
"""


def source():
    out = ["#include <cstdio>\n#include <cstdint>\n#include <cuda_runtime.h>\n",
           "__device__ __forceinline__ uint64_t desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {\n"
           "  uint64_t d = (addr & 0x3FFFF) >> 4; d |= uint64_t((lbo >> 4) & 0x3FFF) << 16;\n"
           "  d |= uint64_t((sbo >> 4) & 0x3FFF) << 32; d |= uint64_t(1) << 62; return d; }\n"]
    for _, n, kind in SHAPES:
        out.append(wgmma_fn(n, kind))
        out.append(kernel(n, kind))
    out.append("""
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s\\n", cudaGetErrorString(e)); return 1; } } while (0)
template <typename K>
int run(const char* name, int n, K kern, int wgs, int sms, float* sink) {
  const int smem = 161 * 1024, iters = 4000;
  CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kern<<<sms, 256, smem>>>(10, wgs, sink);
  CK(cudaDeviceSynchronize());
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  float best = 1e30f;
  for (int r = 0; r < 3; ++r) {
    cudaEventRecord(a); kern<<<sms, 256, smem>>>(iters, wgs, sink); cudaEventRecord(b);
    CK(cudaEventSynchronize(b)); float ms; cudaEventElapsedTime(&ms, a, b); if (ms < best) best = ms;
  }
  const double flops = 2.0 * 64 * n * 16 * 16 * double(iters) * wgs * sms;
  printf("| %s | %d | %d | %.0f |\\n", name, n, wgs, flops / (best * 1e-3) / 1e12);
  return 0;
}
int main() {
  int sms; cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  float* sink; CK(cudaMalloc(&sink, 4));
  printf("| operands | N | warpgroups | TFLOP/s |\\n|---|---:|---:|---:|\\n");
  for (int wgs = 1; wgs <= 2; ++wgs) {
""")
    for name, n, kind in SHAPES:
        out.append(f'    if (run("{name}", {n}, k_{kind}_{n}, wgs, sms, sink)) return 1;\n')
    out.append("  }\n  return 0;\n}\n")
    return "".join(out)


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "/tmp/wgmma-rate"
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, "wgmma_rate.cu")
    with open(src, "w") as f:
        f.write(source())
    exe = os.path.join(work, "wgmma_rate")
    subprocess.run(["nvcc", "-O3", "-std=c++17", "-gencode", "arch=compute_90a,code=sm_90a", "-diag-suppress", "177", src, "-o", exe], check=True)
    if os.environ.get("BUILD_ONLY"):
        return
    subprocess.run([exe], check=True)


if __name__ == "__main__":
    main()
