#!/usr/bin/env bash
# A one-node Slurm cluster for tests: slurm/cluster.sh start|stop|status|env
#
# Needs Debian's slurmctld slurmd slurm-client munge (apt-get install -y --no-install-recommends
# slurmctld slurmd slurm-client munge), root, no systemd.  Two partitions: "debug" (low
# priority, preemptable by requeue) and "urgent" (preempts debug).  A requeued job restarts in
# ~6 s (AuthInfo=cred_expire=5, sched_interval=1).
#
# What it writes:
# - Everything of its own under $DAGMPI_SLURM_DIR (default /tmp/dagmpi-slurm): slurm.conf,
#   the epilog, state, spool, logs and pid files (and munged's log, seed and pid file when it
#   starts munged).  The daemons it starts and the commands it runs find the config through
#   SLURM_CONF=$DAGMPI_SLURM_DIR/slurm.conf; so must yours: eval "$(slurm/cluster.sh env)".
# - Nothing under /etc/slurm: a system slurm.conf there is neither read nor touched.
# - munge: the key /etc/munge/munge.key is created (owned by munge, mode 0400) only if it
#   is missing; an existing key is used as it is.  munged is started only if none is running
#   (socket /run/munge/munge.socket.2, which Slurm's auth/munge uses; /run/munge is created),
#   and "stop" stops only a munged that "start" started.
set -euo pipefail
DIR=${DAGMPI_SLURM_DIR:-/tmp/dagmpi-slurm}
CONF=$DIR/slurm.conf
RUN=$DIR/run
CPUS=${DAGMPI_SLURM_CPUS:-4}
export SLURM_CONF=$CONF

wait_for() {  # wait_for SECONDS CMD...: until CMD succeeds
    local t=$1; shift
    for _ in $(seq 1 $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "cluster.sh: timed out waiting for: $*" >&2; return 1
}

alive() {  # alive PIDFILE: the process it names runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start_daemon() {  # start_daemon NAME PIDFILE CMD...: start NAME unless ours already runs
    local name=$1 pidfile=$2; shift 2
    alive "$pidfile" && return 0
    if pgrep -x "$name" >/dev/null; then
        echo "cluster.sh: a $name not started by this script is running (pid $(pgrep -x "$name" | head -1));" \
             "stop it first: this cluster would talk to it" >&2
        exit 1
    fi
    "$@"
}

start() {
    for b in slurmctld slurmd munged sbatch; do
        command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || { echo "cluster.sh: $b not installed" >&2; exit 3; }
    done
    mkdir -p "$DIR"/{state,spool,log} "$RUN" "$DIR/munge" /run/munge
    chown munge:munge /run/munge "$DIR/munge"
    chmod 0700 "$DIR/munge"
    if [ ! -s /etc/munge/munge.key ]; then  # (an existing key is left as it is)
        mkdir -p /etc/munge
        (mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || \
         dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null)
        chown munge:munge /etc/munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
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
# written by slurm/cluster.sh (a one-node test cluster); used through SLURM_CONF=$CONF
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
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
NodeName=localhost CPUs=$CPUS State=UNKNOWN
PartitionName=debug  Nodes=localhost Default=YES PriorityTier=1  PreemptMode=REQUEUE GraceTime=0 MaxTime=INFINITE State=UP
PartitionName=urgent Nodes=localhost PriorityTier=10 PreemptMode=OFF MaxTime=INFINITE State=UP
CONF
    if ! pgrep -x munged >/dev/null; then  # (a running munged, ours or the system's, serves us)
        runuser -u munge -- /usr/sbin/munged --pid-file="$DIR/munge/munged.pid" \
            --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"
    fi
    wait_for 20 sh -c 'munge -n | unmunge'
    start_daemon slurmctld "$RUN/slurmctld.pid" /usr/sbin/slurmctld -f "$CONF"
    wait_for 30 scontrol ping
    start_daemon slurmd "$RUN/slurmd.pid" /usr/sbin/slurmd -f "$CONF" -N localhost
    wait_for 30 sh -c 'sinfo -h -N -o %T | grep -qE "idle|mixed|allocated"'
    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    echo "slurm cluster up (partitions: debug, urgent); for its commands: export SLURM_CONF=$CONF"
}

stop() {
    for f in "$RUN/slurmd.pid" "$RUN/slurmctld.pid" "$DIR/munge/munged.pid"; do
        [ -s "$f" ] || continue
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
    rm -rf "$DIR/state"
    echo "slurm cluster stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) echo "SLURM_CONF=$CONF"; sinfo; squeue ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
