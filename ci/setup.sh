#!/usr/bin/env bash
# Sets up everything ddgsd-bench needs, only what is missing:
#   .venv/       a Python venv with torch==2.11.0 (libtorch for tch 0.24.0)
#   .libtorch    a stable link to <venv>/lib/python3.X/site-packages/torch
#   target/release/ddgsd-bench
# With --test, also the Python packages the tests compare against
# (torchvision matching torch 2.11.0, numpy, safetensors, scipy) and the real
# TensorBoard that reads the event files back (tests/tensorboard.rs).
# Needs: Rust (cargo), Python 3 with pip and venv, a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
TORCHVISION_VERSION=0.26.0
PY=${PYTHON:-python3}

say() { echo "ci/setup.sh: $*" >&2; }

for tool in cargo "$PY" c++; do
  command -v "$tool" >/dev/null 2>&1 || { say "error: \`$tool\` not found (need Rust, Python 3 with pip, a C++ compiler)"; exit 2; }
done

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
have_torch() {
  .venv/bin/python - <<PYEOF 2>/dev/null
import sys, importlib.util
spec = importlib.util.find_spec("torch")
if spec is None: sys.exit(1)
import os
v = open(os.path.join(os.path.dirname(spec.origin), "version.py")).read()
sys.exit(0 if "__version__ = '$TORCH_VERSION" in v else 1)
PYEOF
}
if ! have_torch; then
  say "installing torch==$TORCH_VERSION into .venv (about 4.7 GB, a minute or more)"
  .venv/bin/pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi
if [ "${1:-}" = "--test" ]; then
  if ! .venv/bin/python -c "import torchvision, numpy, safetensors, scipy.io, tensorboard" >/dev/null 2>&1; then
    say "installing test packages (torchvision==$TORCHVISION_VERSION numpy safetensors scipy tensorboard)"
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" \
      "torchvision==$TORCHVISION_VERSION" numpy safetensors scipy tensorboard \
      || say "warning: could not install the test packages; the tests that need them will say SKIP"
  fi
fi

# Data-parallel runs (c10d through csrc/dist.cpp): the torch wheel ships
# c10d's headers but not gloo's; Debian's libgloo-dev has them (as root with
# apt-get; without them the binary builds and says why `--ranks` is
# unavailable). NCCL's own headers come with torch's nvidia-nccl wheel; the
# CUDA headers it includes need two small header wheels torch does not pull.
if [ ! -e /usr/include/gloo/context.h ] && [ -z "${DDGSD_GLOO_INCLUDE:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing libgloo-dev (gloo's headers, for data-parallel runs)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends libgloo-dev >/dev/null; } \
      || say "warning: could not install libgloo-dev; data-parallel runs will be unavailable"
  else
    say "warning: /usr/include/gloo missing (apt-get install libgloo-dev as root); data-parallel runs will be unavailable"
  fi
fi
if [ -d "$(.venv/bin/python -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))')/../nvidia/nccl/include" ] \
   && ! .venv/bin/python -c "import importlib.metadata as m; m.version('nvidia-cuda-crt'); m.version('nvidia-cuda-cccl')" >/dev/null 2>&1; then
  say "installing the CUDA header wheels NCCL's headers need (nvidia-cuda-crt, nvidia-cuda-cccl 13.0)"
  .venv/bin/pip install --quiet --disable-pip-version-check "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*" \
    || say "warning: could not install them; the binary is built without NCCL (gloo only)"
fi

# libjpeg-turbo (decoding ImageNet JPEGs as Pillow does) is built from the
# source bundled in turbojpeg-sys with CMake; a fresh machine may have none,
# so the venv gets one from PyPI. Without NASM it builds without SIMD (same bits).
if ! command -v cmake >/dev/null 2>&1 && [ ! -x .venv/bin/cmake ]; then
  say "installing cmake into .venv (to build libjpeg-turbo)"
  .venv/bin/pip install --quiet --disable-pip-version-check cmake
fi
if [ -x .venv/bin/cmake ]; then export PATH="$PWD/.venv/bin:$PATH"; fi

SITE=$(.venv/bin/python -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('torch').origin))")
if [ "$(readlink .libtorch 2>/dev/null || true)" != "$SITE" ]; then
  ln -sfn "$SITE" .libtorch
fi

# An exported LIBTORCH_USE_PYTORCH would win over .cargo/config.toml's LIBTORCH.
unset LIBTORCH_USE_PYTORCH
if [ ! -x target/release/ddgsd-bench ] || [ -n "$(find src build.rs csrc Cargo.toml Cargo.lock -newer target/release/ddgsd-bench -print -quit 2>/dev/null)" ]; then
  say "building the release binary"
  cargo build --release --locked
fi
