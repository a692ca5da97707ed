#!/usr/bin/env bash
# Quick start 2: set up if needed, then run the whole test suite (CPU; the
# CUDA tests say SKIP when no GPU is present). This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh --test
# Debian packages some tests start for real (as root; once on a fresh
# machine). Without them those tests say SKIP:
# - pdflatex + booktabs for the LaTeX test of tests/report_golden.rs (about 90 s);
# - strace for the syscall fault injection of tests/fault_injection.rs.
missing=()
command -v pdflatex >/dev/null 2>&1 || missing+=(texlive-latex-base texlive-latex-recommended)
command -v strace >/dev/null 2>&1 || missing+=(strace)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ci/test.sh: installing ${missing[*]}" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null; } \
    || echo "ci/test.sh: warning: could not install ${missing[*]}; the tests that need them will say SKIP" >&2
fi
# cmake from the venv, in case a test build has to rebuild libjpeg-turbo.
if [ -x .venv/bin/cmake ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
unset LIBTORCH_USE_PYTORCH
export RUST_BACKTRACE=0
if [ $# -gt 0 ]; then
  exec cargo test --release --locked "$@"
fi
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
# The CUDA tests first, uncaptured, so that their SKIP lines (no GPU) show.
cargo test --release --locked --test cuda -- --nocapture --test-threads=1 2>&1 | tee -a "$LOG"
# Everything else (the filter leaves out tests/cuda.rs, already run); every
# test binary runs even after one fails, so the summary counts every failure.
status=0
cargo test --release --locked --no-fail-fast -- --test-threads=2 --skip cuda 2>&1 | tee -a "$LOG" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /SKIP: / { s++ }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p - s, f, s }' "$LOG"
exit "$status"
