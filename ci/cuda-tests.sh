#!/usr/bin/env bash
# Runs the carried test binary of tests/cuda.rs against a ddgsd-bench binary
# and prints one line for ci/gpu-check.sh's report: "PASS|FAIL|SKIP detail".
#   bash ci/cuda-tests.sh BINARY OUT_DIR   (CUDA_TESTS: the test binary,
#   default target/release/cuda-tests, built by ci/gpu-carry.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=$(readlink -f "$1"); OUT=$2
CUDA_TESTS=${CUDA_TESTS:-./target/release/cuda-tests}
if [ ! -x "$CUDA_TESTS" ]; then
  echo "SKIP $CUDA_TESTS not carried (bash ci/gpu-carry.sh builds it)"; exit 0
fi
log="$OUT/cuda-tests.log"
if DDGSD_BIN="$BIN" "$CUDA_TESTS" --nocapture --test-threads=1 > "$log" 2>&1; then
  echo "PASS $(grep '^test result' "$log" | tail -1); $(grep -c '^SKIP' "$log") skipped"
else
  echo "FAIL $(grep -E '^test .* FAILED|panicked' "$log" | head -3 | tr '\n' ' ')(see cuda-tests.log)"
fi
