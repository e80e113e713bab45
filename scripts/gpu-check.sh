#!/usr/bin/env bash
# One call on any CUDA machine: build (with the ptxas report), GPU tests, compute-sanitizer,
# SASS check, and the benchmark against torch SDPA in the same run. Results go to $OUT (or ./out).
#   scripts/gpu-check.sh [build|test|xcheck|sanitize|bench|all]... [--quick]
# GPU_TESTS overrides the jest files of the test step, TEST_TIMEOUT (s) bounds it (its log is kept); BENCH_ARGS (e.g. "--only dense --dims 128") goes
# to both benchmark sides.
# 'all' builds only when no addon is built yet (a carried build/ is reused); name 'build' to force it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(all)
quick=""; for s in "${steps[@]}"; do [ "$s" = "--quick" ] && quick="--quick"; done
want() { for s in "${steps[@]}"; do [ "$s" = "$1" ] || [ "$s" = all ] && return 0; done; return 1; }
status=0
note() { echo "== $*" | tee -a "$OUT/summary.txt"; }

if want build && { [[ " ${steps[*]} " == *" build "* ]] || [ ! -f build/Release/attn_cuda.node ] || [ ! -f dist/index.js ]; }; then
  note "build"
  t0=$(date +%s)
  ATTN_PTXAS_VERBOSE=1 ATTN_CUDA=ON node scripts/build-native.js --force > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
  npx tsc -p tsconfig.json >> "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
  note "build took $(( $(date +%s) - t0 ))s"
  grep -E "spill|Used [0-9]+ registers" "$OUT/build.log" | grep -E "bytes spill" | sort | uniq -c | grep -v " 0 bytes spill stores, 0 bytes spill loads" | head -20 | tee -a "$OUT/summary.txt"
  node dist/cli.js info | tee -a "$OUT/summary.txt"
  cuobjdump --dump-sass build/Release/attn_cuda.node 2>/dev/null | grep -oE "\b(HMMA|HGMMA|LDSM|LDGSTS)[.A-Z0-9]*" | sort | uniq -c | tee -a "$OUT/summary.txt"
fi

if want test; then
  note "GPU tests"
  files=(${GPU_TESTS:-test/*.cuda.test.ts test/tensor.test.ts test/async.test.ts})
  timeout "${TEST_TIMEOUT:-3000}" node --expose-gc node_modules/jest/bin/jest.js --verbose --maxWorkers=${JEST_WORKERS:-12} "${files[@]}" > "$OUT/test.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  grep -E "Tests:|✕|●.*›" "$OUT/test.log" | head -40 | tee -a "$OUT/summary.txt"
  # jest --verbose prints a file only when it completes: on a time-out, name the ones that did not.
  grep -E "^(PASS|FAIL) " "$OUT/test.log" | sed 's/ (.*//' | tee -a "$OUT/summary.txt"
  if [ $rc -eq 124 ]; then
    unfinished=$(for f in "${files[@]}"; do grep -qE "^(PASS|FAIL) $f" "$OUT/test.log" || echo "$f"; done)
    echo "timed out after ${TEST_TIMEOUT}s; unfinished: $(echo $unfinished)" | tee -a "$OUT/summary.txt"
  fi
fi

if want xcheck; then
  note "cross-check against torch SDPA and a float64 reference"
  rm -rf /tmp/attn-xcheck
  node scripts/cross-check.js /tmp/attn-xcheck 2> "$OUT/xcheck.log" && python3 scripts/cross_check_torch.py /tmp/attn-xcheck 2>> "$OUT/xcheck.log" | tee "$OUT/xcheck.md" || status=1
  tail -1 "$OUT/xcheck.log"
fi

if want sanitize; then
  note "compute-sanitizer"
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 3 node scripts/sanitize-case.js > "$OUT/sanitize-$tool.log" 2>&1
    rc=$?
    echo "$tool exit $rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize-$tool.log" | tail -1)" | tee -a "$OUT/summary.txt"
    [ $rc -eq 0 ] || status=1
  done
fi

if want bench; then
  note "benchmark (attn-cuda, then torch SDPA, same machine and run)"
  node scripts/bench-gpu.js "$OUT/bench-attn.json" $quick ${BENCH_ARGS:-} 2> "$OUT/bench-attn.log" || { tail -20 "$OUT/bench-attn.log"; status=1; }
  python3 scripts/bench_torch.py "$OUT/bench-torch.json" $quick ${BENCH_ARGS:-} 2> "$OUT/bench-torch.log" || { tail -20 "$OUT/bench-torch.log"; status=1; }
  python3 scripts/report.py "$OUT/bench-attn.json" "$OUT/bench-torch.json" | tee "$OUT/report.md"
fi
# The lease returns at most 8 files: logs travel as one archive.
(cd "$OUT" && ls *.log >/dev/null 2>&1 && tar czf "logs-$(IFS=-; echo "${steps[*]}").tgz" *.log && rm -f *.log)
exit $status
