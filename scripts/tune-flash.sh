#!/usr/bin/env bash
# Compares tile shapes of the dense forward kernel on a GPU.
#   scripts/tune-flash.sh build   # where nvcc is: one addon per variant into .dev/variants/
#   scripts/tune-flash.sh bench   # on the GPU: dense bench of each variant (head dims 128, 256)
# A variant sets, per head dim, kBlockM, kBlockN, warps, Q in registers,
# K stages, CTAs per SM (see csrc/cuda/flash/flash_fwd_hdim*.cu for the shipped shapes).
set -euo pipefail
cd "$(dirname "$0")/.."
# tile HDIM M N WARPS QREGS KSTAGES CTAS -> the -D list of one head dim (nvcc splits -D values at
# commas, hence one macro per field).
tile() { echo "ATTN_D$1_M=$2;ATTN_D$1_N=$3;ATTN_D$1_WARPS=$4;ATTN_D$1_QREGS=$5;ATTN_D$1_KSTAGES=$6;ATTN_D$1_CTAS=$7"; }
declare -A VARIANTS=(
  [v0-default]=""
  [v1]="$(tile 256 64 32 4 false 2 2);$(tile 128 128 128 8 false 2 1)"
  [v2]="$(tile 256 128 64 8 false 1 1);$(tile 128 128 64 8 false 2 2)"
  [v3]="$(tile 256 128 32 8 false 2 1);$(tile 128 64 64 4 true 2 3)"
)
case "${1:-}" in
  build)
    mkdir -p .dev/variants
    for v in "${!VARIANTS[@]}"; do
      rm -rf build  # cmake-js compile keeps a configured cache: start clean so the definitions apply
      ATTN_CUDA=ON ATTN_PTXAS_VERBOSE=1 ATTN_CUDA_DEFINES="${VARIANTS[$v]}" node scripts/build-native.js --force > ".dev/variants/$v.log" 2>&1
      cp build/Release/attn_cuda.node ".dev/variants/$v.node"
      echo "$v: $(grep -cE '[1-9][0-9]* bytes spill' ".dev/variants/$v.log") kernels with spills"
    done
    rm -rf build && ATTN_CUDA=ON node scripts/build-native.js --force > /dev/null  # leave the shipped build in place
    ;;
  bench)
    OUT=${OUT:-$PWD/out}
    mkdir -p "$OUT"
    cp build/Release/attn_cuda.node /tmp/attn_cuda.shipped.node
    for v in $(printf '%s\n' "${!VARIANTS[@]}" | sort); do
      cp ".dev/variants/$v.node" build/Release/attn_cuda.node
      node scripts/bench-gpu.js "/tmp/tune-$v.json" --only dense --dims 128,256 --seqs 2048,8192,16384 2>/dev/null
      node -e "const r=require('/tmp/tune-$v.json').dense; console.log('$v', r.map(c=>'d'+c.headDim+'/'+c.seqLen+(c.causal?'c':'')+' '+c.tflops.toFixed(0)).join('  '))"
    done | tee "$OUT/tune.txt"
    cp /tmp/attn_cuda.shipped.node build/Release/attn_cuda.node
    ;;
  *) echo "usage: $0 build|bench" >&2; exit 2 ;;
esac
