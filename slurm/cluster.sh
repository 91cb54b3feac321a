#!/usr/bin/env bash
# A one-node Slurm cluster for tests: slurm/cluster.sh start|stop|status
#
# Needs Debian's slurmctld slurmd slurm-client munge (apt-get install -y --no-install-recommends
# slurmctld slurmd slurm-client munge), root, no systemd.  Two partitions: "debug" (low
# priority, preemptable by requeue) and "urgent" (preempts debug).  A requeued job restarts in
# ~6 s (AuthInfo=cred_expire=5, sched_interval=1).  State lives under $DAGMPI_SLURM_DIR
# (default /tmp/dagmpi-slurm).
set -euo pipefail
DIR=${DAGMPI_SLURM_DIR:-/tmp/dagmpi-slurm}
CONF=/etc/slurm/slurm.conf
CPUS=${DAGMPI_SLURM_CPUS:-4}

wait_for() {  # wait_for SECONDS CMD...: until CMD succeeds
    local t=$1; shift
    for _ in $(seq 1 $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "cluster.sh: timed out waiting for: $*" >&2; return 1
}

start() {
    for b in slurmctld slurmd munged sbatch; do
        command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || { echo "cluster.sh: $b not installed" >&2; exit 3; }
    done
    mkdir -p "$DIR"/{state,spool,log} /etc/slurm /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        (mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || \
         dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null)
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    cat > "$DIR/epilog.sh" <<'EPI'
#!/bin/sh
# A hard-killed MPICH job that is requeued reuses its job id and would hang on its stale shm file.
command -v fuser >/dev/null 2>&1 || exit 0   # cannot tell which files are in use: leave them
for f in /dev/shm/mpich_shm_* /dev/shm/mpich_*; do
    [ -e "$f" ] || continue
    fuser -s "$f" 2>/dev/null || rm -f "$f"
done
exit 0
EPI
    chmod +x "$DIR/epilog.sh"
    cat > "$CONF" <<CONF
ClusterName=dagmpi-test
SlurmctldHost=localhost
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=5
SchedulerParameters=sched_interval=1,bf_interval=1
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=pmi2
JobRequeue=1
KillWait=5
MinJobAge=300
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
Epilog=$DIR/epilog.sh
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
NodeName=localhost CPUs=$CPUS State=UNKNOWN
PartitionName=debug  Nodes=localhost Default=YES PriorityTier=1  PreemptMode=REQUEUE GraceTime=0 MaxTime=INFINITE State=UP
PartitionName=urgent Nodes=localhost PriorityTier=10 PreemptMode=OFF MaxTime=INFINITE State=UP
CONF
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    wait_for 20 sh -c 'munge -n | unmunge'
    pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
    wait_for 30 scontrol ping
    pgrep -x slurmd >/dev/null || /usr/sbin/slurmd -N localhost
    wait_for 30 sh -c 'sinfo -h -N -o %T | grep -qE "idle|mixed|allocated"'
    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    echo "slurm cluster up (partitions: debug, urgent)"
}

stop() {
    for f in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
        [ -s "$f" ] || continue
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$DIR/state"
    echo "slurm cluster stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo; squeue ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
