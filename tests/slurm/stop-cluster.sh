#!/usr/bin/env bash
# Stops the test cluster of start-cluster.sh: cancels what is left, then stops
# slurmd, slurmctld and munged by their pidfiles (checking that each pid is
# still the daemon it names before signalling it).
set -uo pipefail

if command -v scancel >/dev/null && [ -s /run/slurm/slurmctld.pid ]; then
  scancel --full --user="$(id -un)" 2>/dev/null || true
  scancel --full --state=PENDING 2>/dev/null || true
  scancel --full --state=RUNNING 2>/dev/null || true
fi

stop() {  # stop PIDFILE COMM
  local pidfile=$1 comm=$2 pid
  [ -s "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
    kill "$pid"
    for _ in $(seq 50); do
      [ -d "/proc/$pid" ] || break
      sleep 0.1
    done
    [ -d "/proc/$pid" ] && kill -9 "$pid"
  fi
  rm -f "$pidfile"
}

stop /run/slurm/slurmd.pid slurmd
stop /run/slurm/slurmctld.pid slurmctld
stop /run/munge/munged.pid munged
echo "stop-cluster: stopped"
