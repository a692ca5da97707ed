#!/usr/bin/env bash
# Builds what ci/gpu-check.sh needs on the GPU machine, where nothing can be
# built: the release binary and the test binary of tests/cuda.rs, copied to
# target/release/cuda-tests. Prints the paths to carry.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/cmake ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
unset LIBTORCH_USE_PYTORCH
cargo build --release --locked
exe=$(cargo test --release --locked --test cuda --no-run 2>&1 | tee /dev/stderr \
  | grep -o 'target/release/deps/cuda-[0-9a-f]*' | tail -1)
[ -x "$exe" ] || { echo "gpu-carry: the CUDA test binary was not found" >&2; exit 2; }
cp "$exe" target/release/cuda-tests.tmp && mv target/release/cuda-tests.tmp target/release/cuda-tests
echo "carry: target/release/ddgsd-bench target/release/cuda-tests"
