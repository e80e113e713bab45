#!/usr/bin/env bash
# Compares tile shapes of the dense forward kernels on a GPU.
#   scripts/tune-flash.sh build [sm80|sm90]   # where nvcc is: one addon per variant into .dev/variants/
#   scripts/tune-flash.sh bench [sm80|sm90]   # on the GPU: dense bench of each variant
# sm80 variants set, per head dim, kBlockM, kBlockN, warps, Q in registers, K stages, CTAs per SM
# (csrc/cuda/flash/fwd_tiles.cuh for d64/128/256, shared with the paged prefill; flash_fwd_hdim32/96.cu);
# sm90 variants set the key block and the K/V stages of the Hopper kernel
# (csrc/cuda/hopper/flash_fwd_sm90_hdim*.cu). sm90 builds compile sm_90a only.
set -euo pipefail
cd "$(dirname "$0")/.."
# tile HDIM M N WARPS QREGS KSTAGES CTAS -> the -D list of one head dim (nvcc splits -D values at
# commas, hence one macro per field).
tile() { echo "ATTN_D$1_M=$2;ATTN_D$1_N=$3;ATTN_D$1_WARPS=$4;ATTN_D$1_QREGS=$5;ATTN_D$1_KSTAGES=$6;ATTN_D$1_CTAS=$7"; }
tile90() { echo "ATTN_SM90_D$1_N=$2;ATTN_SM90_D$1_STAGES=$3"; }
arch=${2:-sm90}
declare -A VARIANTS
if [ "$arch" = sm80 ]; then
  VARIANTS=(
    [v0-default]=""
    [v1]="$(tile 256 64 32 4 false 2 2);$(tile 128 128 128 8 false 2 1)"
    [v2]="$(tile 256 128 64 8 false 1 1);$(tile 128 128 64 8 false 2 2)"
    [v3]="$(tile 256 128 32 8 false 2 1);$(tile 128 64 64 4 true 2 3)"
  )
  dims=128,256 gencode="" env_run="ATTN_CUDA_FORCE_SM80=1"
else
  VARIANTS=(
    [h0-default]=""
    [h1]="$(tile90 64 192 2);$(tile90 128 176 2);$(tile90 256 80 2)"
    [h2]="$(tile90 64 128 3);$(tile90 128 128 3)"
  )
  dims=64,128,256 gencode="-gencode=arch=compute_90a,code=sm_90a" env_run=""
fi
case "${1:-}" in
  build)
    mkdir -p .dev/variants
    for v in "${!VARIANTS[@]}"; do
      rm -rf build  # cmake-js compile keeps a configured cache: start clean so the definitions apply
      ATTN_CUDA=ON ATTN_PTXAS_VERBOSE=1 ATTN_CUDA_GENCODE="$gencode" ATTN_CUDA_DEFINES="${VARIANTS[$v]}" \
        node scripts/build-native.js --force > ".dev/variants/$v.log" 2>&1
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
      env $env_run node scripts/bench-gpu.js "/tmp/tune-$v.json" --only dense --dims $dims --seqs 2048,4096,16384 2>/dev/null
      node -e "const r=require('/tmp/tune-$v.json').dense; console.log('$v', r.map(c=>'d'+c.headDim+'/'+c.seqLen+(c.causal?'c':'')+' '+c.tflops.toFixed(0)).join('  '))"
    done | tee "$OUT/tune.txt"
    cp /tmp/attn_cuda.shipped.node build/Release/attn_cuda.node
    ;;
  *) echo "usage: $0 build|bench [sm80|sm90]" >&2; exit 2 ;;
esac
