#!/usr/bin/env bash
# A one-node Slurm cluster in a folder, for tests and for trying the
# `ddgsd-bench slurm` scripts on one machine. As root:
#   bash ci/slurm-cluster.sh install        apt-get install slurm-wlm munge (if missing)
#   bash ci/slurm-cluster.sh start DIR      munged (as the munge user), slurmctld -D, slurmd -D
#                                           in the background; DIR/slurm.conf, DIR/pids
#   export SLURM_CONF=DIR/slurm.conf        then sbatch, squeue, scontrol ... talk to it
#   bash ci/slurm-cluster.sh stop DIR       kills the daemons listed in DIR/pids
# The node has CPUS (default 2) CPUs; ports are picked free (or SLURM_PORT).
# Exit codes: 0 ok, 2 cannot (not root, no packages, a daemon did not start;
# the last line of stderr says why).
set -euo pipefail
say() { echo "ci/slurm-cluster.sh: $*" >&2; }
cmd=${1:-}
case "$cmd" in
install)
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    exit 0
  fi
  [ "$(id -u)" = 0 ] || { say "not root: cannot install slurm-wlm munge"; exit 2; }
  command -v apt-get >/dev/null || { say "no apt-get: install slurm-wlm and munge by hand"; exit 2; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || { say "apt-get update failed (no package registry?)"; exit 2; }
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 slurm-wlm munge >&2 || { say "apt-get install slurm-wlm munge failed"; exit 2; }
  ;;
start)
  DIR=${2:?usage: slurm-cluster.sh start DIR}
  [ "$(id -u)" = 0 ] || { say "not root: slurmd needs root here"; exit 2; }
  for t in munged slurmctld slurmd sinfo; do
    command -v $t >/dev/null || { say "$t not found (run: slurm-cluster.sh install)"; exit 2; }
  done
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  chmod 755 "$DIR"
  mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool"
  : > "$DIR/pids"
  # munge: own key, socket and files, run as the munge user.
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chown -R munge: "$DIR/munge"
  chmod 700 "$DIR/munge"
  chmod 400 "$DIR/munge/munge.key"
  SOCK="$DIR/munge/munge.socket"
  runuser -u munge -- munged --force --key-file="$DIR/munge/munge.key" --socket="$SOCK" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed" || { say "munged did not start (see $DIR/munge/munged.log)"; exit 2; }
  for _ in $(seq 50); do [ -s "$DIR/munge/munged.pid" ] && break; sleep 0.1; done
  echo "$(cat "$DIR/munge/munged.pid")" >> "$DIR/pids"
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  P1=${SLURM_PORT:-$(free_port)}
  P2=$(free_port)
  [ "$P2" != "$P1" ] || P2=$((P1 + 1))
  HOST=$(hostname -s)
  cat > "$DIR/slurm.conf" <<CONF
ClusterName=ddgsd
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmctldPort=$P1
SlurmdPort=$P2
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
KillWait=10
MinJobAge=600
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=${CPUS:-2} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$DIR/slurm.conf"
  slurmctld -D -i -f "$SLURM_CONF" > "$DIR/slurmctld.stdout" 2>&1 &
  echo $! >> "$DIR/pids"
  slurmd -D -f "$SLURM_CONF" > "$DIR/slurmd.stdout" 2>&1 &
  echo $! >> "$DIR/pids"
  for _ in $(seq 150); do
    if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      say "cluster up: export SLURM_CONF=$SLURM_CONF"
      exit 0
    fi
    sleep 0.2
  done
  say "the node did not come up in 30 s (see $DIR/slurmctld.log, $DIR/slurmd.log)"
  exit 2
  ;;
stop)
  DIR=${2:?usage: slurm-cluster.sh stop DIR}
  [ -f "$DIR/pids" ] || exit 0
  for p in $(tac "$DIR/pids"); do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for p in $(cat "$DIR/pids"); do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in $(cat "$DIR/pids"); do kill -9 "$p" 2>/dev/null || true; done
  ;;
*)
  say "usage: slurm-cluster.sh install | start DIR | stop DIR"
  exit 2
  ;;
esac
