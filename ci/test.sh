#!/usr/bin/env bash
# Quick start 2: set up if needed, then run the whole test suite (CPU; the
# CUDA tests say SKIP when no GPU is present). This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh --test
unset LIBTORCH_USE_PYTORCH
export RUST_BACKTRACE=0
cargo test --release --locked -- --test-threads=2 "$@"
