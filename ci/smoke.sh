#!/usr/bin/env bash
# Quick start 1: set up if needed, then run the smoke suite (all six arms x 2
# seeds on the built-in synthetic dataset; about 4 minutes on 2 CPU cores).
# Extra arguments go to `ddgsd-bench run`, e.g. --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
exec ./target/release/ddgsd-bench run suites/smoke.toml "$@"
