#!/usr/bin/env bash
# GPU checks, run on a machine with an NVIDIA GPU and the release binary:
#   bash ci/gpu-check.sh [BINARY]        (report written to $OUT or ./gpu-report)
# Checks, each reported pass/fail in $OUT/gpu-report.md:
#   0. tests/cuda.rs, when its test binary is carried (CUDA_TESTS, default
#      target/release/cuda-tests; `bash ci/gpu-carry.sh` builds it): run
#      against BINARY, every test must pass (SKIP in the report when absent)
#   1. the environment: CUDA visible, deterministic flags read back from libtorch
#   2. suites/gpu-smoke.toml twice on CUDA: identical checkpoint hashes
#   3. kill -9 mid-run on CUDA, resume: the straight run's hash
#   4. the same suite with determinism off: flags recorded off, hash compared
#   5. throughput: `ddgsd-bench bench` on CUDA (figures, no threshold), and
#      the PS-KD and CS-KD steps against the baseline's (`bench --arm`)
#   6. the speed targets: `bench --loop --pytorch` on a DDGSD ResNet-18 CIFAR-100
#      workload in bf16 + channels_last and in fp32 + contiguous (deterministic):
#      epoch time (2 x 50,000 images) <= 2 s in bf16, >= 1.5x the PyTorch loop,
#      fp32 <= 3x the bf16 time (with DEVICE=cpu: a tiny workload, figures only)
#   7. data-parallel: a group of one rank with NCCL (torchrun's variables,
#      WORLD_SIZE=1; gloo with DEVICE=cpu) gives the single process's hash;
#      `--ranks 2` sharing the one GPU with gloo over CUDA tensors, twice,
#      identical hashes
# torch's libraries: the binary's rpath covers .libtorch and /opt/torch/.venv;
# set LD_LIBRARY_PATH for another location.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-./target/release/ddgsd-bench}
# DEVICE=cpu runs the same script on a CPU-only machine (to test the script).
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-./gpu-report}
mkdir -p "$OUT"
REPORT="$OUT/gpu-report.md"
PY=$(command -v python3 || true)
[ -x /opt/torch/.venv/bin/python3 ] && PY=/opt/torch/.venv/bin/python3
for d in /opt/torch/.venv/lib/python3*/site-packages/torch/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
FAILS=0
echo "# ddgsd-bench GPU check ($(date -u +%FT%TZ))" > "$REPORT"
result() { # name status detail (SKIP is not a failure)
  echo "- **$2** $1: $3" >> "$REPORT"; echo "gpu-check: $2 $1: $3" >&2
  [ "$2" = PASS ] || [ "$2" = SKIP ] || FAILS=$((FAILS + 1))
}
hash_of() { # results dir, run id
  "$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint_sha256'])" "$1/$2/record.json" 2>/dev/null
}
field() { # record, python expression on r
  "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null
}

# 0. the CUDA tests, run against this binary
line=$(bash ci/cuda-tests.sh "$BIN" "$OUT")
result cuda-tests "${line%% *}" "${line#* }"

# 1. environment
if "$BIN" env --device "$DEVICE" > "$OUT/env.json" 2> "$OUT/env.err"; then
  flags=$(field "$OUT/env.json" "r['determinism']")
  ok=$(field "$OUT/env.json" "r['determinism']['deterministic_algorithms'] and r['determinism']['cudnn_deterministic'] and not r['determinism']['cudnn_benchmark'] and not r['determinism']['tf32_cudnn'] and not r['determinism']['tf32_cublas']")
  [ "$ok" = True ] && result env PASS "$(field "$OUT/env.json" "r['platform']"); flags $flags" \
                   || result env FAIL "flags not as asked: $flags"
else
  result env FAIL "$(tail -1 "$OUT/env.err")"
fi

# 2. twice, identical hashes
S=${SUITE:-suites/gpu-smoke.toml}
NAME=$("$BIN" plan "$S" --json | "$PY" -c "import json,sys; print(json.load(sys.stdin)[0]['suite'])")
RIDS=$("$BIN" plan "$S" --json | "$PY" -c "import json,sys; print(' '.join(r['run_id'] for r in json.load(sys.stdin)))")
RID=${RIDS##* }   # the last run (the ddgsd arm): killed and resumed below
for k in a b; do
  t0=$(date +%s.%N)
  "$BIN" run "$S" --device "$DEVICE" --no-check --out "$OUT/$k" > "$OUT/run-$k.log" 2>&1
  echo "exit $?" >> "$OUT/run-$k.log"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }' > "$OUT/time-$k"
done
all_same=1; detail=""
for rid in $RIDS; do
  ha=$(hash_of "$OUT/a/$NAME" $rid); hb=$(hash_of "$OUT/b/$NAME" $rid)
  detail="$detail $rid ${ha:0:16}/${hb:0:16}"
  { [ -n "$ha" ] && [ "$ha" = "$hb" ]; } || all_same=0
done
[ $all_same = 1 ] && result twice PASS "identical hashes:$detail (wall $(cat "$OUT/time-a")s, $(cat "$OUT/time-b")s)" \
                  || result twice FAIL "hashes differ or runs failed:$detail (see run-a.log, run-b.log)"

# 3. kill -9 mid-run, resume
"$BIN" run "$S" --device "$DEVICE" --no-check --out "$OUT/k" > "$OUT/kill.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do
  [ -f "$OUT/k/$NAME/$RID/checkpoint/state.json" ] && break; sleep 0.1
done
kill -9 $PID 2>/dev/null; wait $PID 2>/dev/null
"$BIN" run "$S" --device "$DEVICE" --no-check --resume --out "$OUT/k" >> "$OUT/kill.log" 2>&1
hk=$(hash_of "$OUT/k/$NAME" $RID); ha=$(hash_of "$OUT/a/$NAME" $RID)
resumed=$(field "$OUT/k/$NAME/$RID/record.json" "r['timing']['resumed']")
if [ "$resumed" != True ]; then
  result resume FAIL "the run finished before the kill (resumed=$resumed): inconclusive, make suites/gpu-smoke.toml longer"
elif [ -n "$hk" ] && [ "$hk" = "$ha" ]; then
  result resume PASS "killed after its first checkpoint and resumed: ${hk:0:16} = straight run"
else
  result resume FAIL "resumed ${hk:-none} vs straight ${ha:-none} (see kill.log)"
fi

# 4. determinism off
sed 's/^\[runtime\]$/[runtime]\ndeterministic = false/; s/^expected = .*//' "$S" > "$OUT/nondet.toml"
"$BIN" run "$OUT/nondet.toml" --device "$DEVICE" --no-check --out "$OUT/nd" > "$OUT/nondet.log" 2>&1
hn=$(hash_of "$OUT/nd/$NAME" $RID)
fl=$(field "$OUT/nd/$NAME/$RID/record.json" "r['env']['determinism']['deterministic_algorithms']")
t1n=$(field "$OUT/nd/$NAME/$RID/record.json" "r['metrics']['top1_final']")
t1d=$(field "$OUT/a/$NAME/$RID/record.json" "r['metrics']['top1_final']")
if [ "$fl" = False ]; then
  same=$([ "$hn" = "$ha" ] && echo "same hash" || echo "different hash")
  result nondeterministic PASS "flags recorded off; $same as the deterministic run (${hn:0:16} vs ${ha:0:16}); top1 $t1n vs $t1d"
else
  result nondeterministic FAIL "record flags: ${fl:-missing} (see nondet.log)"
fi

# 5. throughput
if [ "$DEVICE" = cpu ]; then BENCH_ARGS="--arch resnet8 --batch 16 --steps 2"
else BENCH_ARGS="--arch resnet32 --arch resnet18 --arch wrn28_10 --arch imagenet_resnet50 --steps 20"; fi
if "$BIN" bench --device "$DEVICE" $BENCH_ARGS > "$OUT/bench.txt" 2>&1; then
  result bench PASS "see below"; { echo; echo '```'; cat "$OUT/bench.txt"; echo '```'; } >> "$REPORT"
else
  result bench FAIL "$(tail -1 "$OUT/bench.txt")"
fi

# 5b. the self-distillation methods' step against the baseline's (docs/method.md
# §8: PS-KD costs a gather from its memory, target <= 1.05x; CS-KD one no-grad
# forward of the partners, target <= 1.4x)
if [ "$DEVICE" = cpu ]; then MARGS="--arch resnet8 --batch 16 --steps 2"
else MARGS="--arch resnet20 --steps 50"; fi
ok_methods=1; mmsg=""
for arm in ps_kd:1.05 cs_kd:1.4; do
  name=${arm%%:*}; target=${arm#*:}
  f="$OUT/bench-$name.txt"
  # shellcheck disable=SC2086
  if ! "$BIN" bench --device "$DEVICE" $MARGS --arm "$name" > "$f" 2>&1; then
    ok_methods=0; mmsg="$mmsg $name: $(tail -1 "$f");"; continue
  fi
  { echo; echo '```'; cat "$f"; echo '```'; } >> "$REPORT"
  x=$(awk -v a="$name" '$2 == a { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+x$/) { sub(/x$/, "", $i); print $i } }' "$f")
  mmsg="$mmsg $name ${x:-?}x the baseline's step (target <= ${target}x);"
  if [ "$DEVICE" != cpu ] && ! awk -v x="${x:-99}" -v t="$target" 'BEGIN { exit !(x <= t) }'; then ok_methods=0; fi
done
if [ $ok_methods = 1 ]; then
  result methods PASS "${mmsg%;}$([ "$DEVICE" = cpu ] && echo " (tiny CPU workload: targets not applied)")"
else
  result methods FAIL "${mmsg%;}"
fi

# 6. speed targets
if [ "$DEVICE" = cpu ]; then LOOP_ARGS="--arch resnet8 --batch 8 --steps 2 --threads 1 --rounds 1"; PYT=""
else
  LOOP_ARGS="--arch resnet18 --batch 128 --steps 50 --rounds 2"; PYT=""
  if [ -n "$PY" ] && "$PY" -c "import torch, torchvision, PIL" 2>/dev/null; then PYT="--pytorch --python $PY"
  else echo "gpu-check: no python with torch and torchvision: the PyTorch loop is not measured" >&2; fi
fi
loop_ips() { # file -> our loop's source images/s
  awk -F'|' '/^\| ddgsd-bench loop/ { gsub(/ /, "", $3); print $3 }' "$1"
}
ok_loops=1
for mode in "bf16 channels_last" "fp32 contiguous"; do
  set -- $mode
  f="$OUT/loop-$1.txt"
  # shellcheck disable=SC2086
  if ! "$BIN" bench --loop --device "$DEVICE" $LOOP_ARGS $PYT --precision "$1" --memory-format "$2" > "$f" 2>&1; then
    ok_loops=0; result "loop-$1" FAIL "$(tail -1 "$f")"
  fi
  { echo; echo '```'; cat "$f"; echo '```'; } >> "$REPORT"
done
if [ $ok_loops = 1 ]; then
  b=$(loop_ips "$OUT/loop-bf16.txt"); f32=$(loop_ips "$OUT/loop-fp32.txt")
  ratio=$(grep -o 'our loop / PyTorch loop [0-9.]*x' "$OUT/loop-bf16.txt" | grep -o '[0-9.]*x$' | tr -d x)
  verdict=$(awk -v b="$b" -v f="$f32" -v r="${ratio:-}" -v cpu="$([ "$DEVICE" = cpu ] && echo 1 || echo 0)" 'BEGIN {
    eb = 50000 / b; ef = 50000 / f
    msg = sprintf("epoch of 2 x 50,000 images: bf16+channels_last %.2f s, fp32 %.2f s (%.2fx)", eb, ef, ef / eb)
    if (r != "") msg = msg sprintf(", our loop / PyTorch loop (bf16) %.2fx", r)
    ok = (eb <= 2 && ef <= 3 * eb && r != "" && r >= 1.5)
    if (cpu) { print "PASS " msg " (tiny CPU workload: targets not applied)" }
    else if (ok) { print "PASS " msg " (targets: <= 2 s, >= 1.5x, fp32 <= 3x)" }
    else { print "FAIL " msg " (targets: <= 2 s, >= 1.5x, fp32 <= 3x)" } }')
  result targets "${verdict%% *}" "${verdict#* }"
fi

# 7. data-parallel runs
cat > "$OUT/dp.toml" <<TOML
name = "dp"
seeds = [0]
architectures = [{ name = "resnet8", width = 8 }]
arms = ["ddgsd"]
[dataset]
name = "synthetic"
classes = 10
train = 256
test = 100
[train]
epochs = 2
batch_size = 32
milestones = []
[runtime]
device = "$DEVICE"
threads = 1
collective_timeout = 60
TOML
DPRUN=resnet8w8__ddgsd__s0
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
"$BIN" run "$OUT/dp.toml" --no-check --out "$OUT/dp-plain" > "$OUT/dp.log" 2>&1
RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$(free_port) \
  "$BIN" run "$OUT/dp.toml" --no-check --out "$OUT/dp-one" >> "$OUT/dp.log" 2>&1
hp=$(hash_of "$OUT/dp-plain/dp" $DPRUN); h1=$(hash_of "$OUT/dp-one/dp" $DPRUN)
be=$(field "$OUT/dp-one/dp/$DPRUN/record.json" "r['env'].get('backend')")
if [ -n "$hp" ] && [ "$hp" = "$h1" ]; then
  result dp-group-of-one PASS "backend $be, world size 1: ${h1:0:16} = the single process's hash"
else
  result dp-group-of-one FAIL "backend ${be:-?}: ${h1:-none} vs ${hp:-none} (see dp.log)"
fi
sed 's/^\[runtime\]$/[runtime]\nbackend = "gloo"/' "$OUT/dp.toml" > "$OUT/dp-gloo.toml"
for k in a b; do
  "$BIN" run "$OUT/dp-gloo.toml" --no-check --ranks 2 --out "$OUT/dp2-$k" >> "$OUT/dp.log" 2>&1
done
ha=$(hash_of "$OUT/dp2-a/dp" $DPRUN); hb=$(hash_of "$OUT/dp2-b/dp" $DPRUN)
devs=$(field "$OUT/dp2-a/dp/$DPRUN/record.json" "','.join(x['device'] for x in r['env']['ranks'])")
if [ -n "$ha" ] && [ "$ha" = "$hb" ]; then
  result dp-two-ranks PASS "--ranks 2, gloo, rank devices $devs, twice: ${ha:0:16}"
else
  result dp-two-ranks FAIL "${ha:-none} vs ${hb:-none} (see dp.log)"
fi

echo >> "$REPORT"; echo "failures: $FAILS" >> "$REPORT"
cat "$REPORT"
[ $FAILS = 0 ]
