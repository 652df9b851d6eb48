#!/usr/bin/env bash
# A real single-node SLURM cluster on loopback, for the workflow's cluster tests
# (and for trying the SLURM profile on a workstation): Debian's slurmctld,
# slurmd, slurm-client and munge, one partition, fake GPUs as GRES so that the
# rules' GPU requests are scheduled for real. No systemd needed.
#
#   sudo tests/slurm/start-cluster.sh      # installs (apt) if needed, starts
#   sudo tests/slurm/stop-cluster.sh       # stops the daemons by pidfile
#
# Exit 2: this machine cannot host it (not root, no apt-get, or the packages
# cannot be installed); the message says which. Other non-zero: it failed.
# Settings (environment): TRUTHMAP_SLURM_PARTITION (default: local),
# TRUTHMAP_SLURM_GPUS (fake GPUs, default: 2).
set -euo pipefail

PARTITION="${TRUTHMAP_SLURM_PARTITION:-local}"
GPUS="${TRUTHMAP_SLURM_GPUS:-2}"
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
JOBCOMP_LOG="$LOG_DIR/jobcomp.log"

cannot() { echo "start-cluster: cannot host a SLURM cluster here: $*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || cannot "needs root (installs packages, starts daemons)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || cannot "no apt-get to install slurmctld, slurmd, slurm-client, munge"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >/tmp/truthmap-slurm-apt.log 2>&1; then
    apt-get update >>/tmp/truthmap-slurm-apt.log 2>&1 || true
    apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >>/tmp/truthmap-slurm-apt.log 2>&1 \
      || cannot "apt-get install failed (see /tmp/truthmap-slurm-apt.log)"
  fi
fi

if [ -s /run/slurm/slurmctld.pid ] && [ -d "/proc/$(cat /run/slurm/slurmctld.pid)" ]; then
  echo "start-cluster: already running (stop it with tests/slurm/stop-cluster.sh)" >&2
  exit 0
fi

# Directories the packages' systemd units would create.
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o slurm -g slurm -m 0755 /run/slurm "$LOG_DIR" /var/lib/slurm /var/lib/slurm/slurmctld
install -d -m 0755 /var/lib/slurm/slurmd "$CONF_DIR"
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile /etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

# Fake GPU device files: slurmd counts only GPUs backed by a device file.
gpu_files=()
for ((i = 0; i < GPUS; i++)); do
  dev="/dev/truthmap-fakegpu$i"
  [ -e "$dev" ] || mknod "$dev" c 1 3
  gpu_files+=("$dev")
done

host="$(hostname -s)"
# The node as slurmd counts it, with memory below the machine's so jobs fit
# (its CPUs are not oversubscribed: two 2-thread torch jobs on 2 cores run
# slower together than one after the other).
node_line="$(slurmd -C | head -1)"
real_mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")"
node_line="$(sed "s/RealMemory=[0-9]*/RealMemory=$((real_mem * 85 / 100))/" <<<"$node_line")"

cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by truthmap tests/slurm/start-cluster.sh: a one-node test cluster.
ClusterName=truthmap-test
SlurmctldHost=$host
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmUser=slurm
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=600
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
$node_line NodeAddr=127.0.0.1 Gres=gpu:$GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

: >"$CONF_DIR/gres.conf"
for dev in "${gpu_files[@]}"; do
  echo "NodeName=$host Name=gpu File=$dev" >>"$CONF_DIR/gres.conf"
done

runuser -u munge -- /usr/sbin/munged
/usr/sbin/slurmctld -c
/usr/sbin/slurmd

for _ in $(seq 60); do
  if sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
    echo "start-cluster: up: partition $PARTITION, node $host, $GPUS fake GPUs, job log $JOBCOMP_LOG"
    exit 0
  fi
  sleep 0.5
done
echo "start-cluster: the node did not come up; sinfo says:" >&2
sinfo >&2 || true
tail -20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
exit 1
