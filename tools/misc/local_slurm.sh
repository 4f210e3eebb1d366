#!/usr/bin/env bash
# A private one-node Slurm cluster on this host, for trying and testing
# tools/slurm_train.sh and tools/slurm_test.sh without a real cluster.
#
# Usage: tools/misc/local_slurm.sh start|stop|status [DIR]
#   start   writes DIR/slurm.conf (one node: this host, nproc CPUs, no GPUs,
#           partition 'debug'), starts munged, slurmctld and slurmd with their
#           sockets, state and logs under DIR, and waits until the node is idle
#   stop    cancels its jobs and stops the daemons whose pids are in DIR
#   status  sinfo of the cluster
# DIR defaults to $MMEXT_SLURM_DIR or /tmp/mmext-slurm. Ports: a free pair
# (override with SLURMCTLD_PORT / SLURMD_PORT). Then point the clients at it:
#   export SLURM_CONF=DIR/slurm.conf
#   GPUS=0 NTASKS=2 CPUS_PER_TASK=1 bash tools/slurm_train.sh debug tiny \
#       configs/tiny/resnet18_1xb8-scratch_tiny-64px.py work_dirs/tiny_slurm
# Needs root (slurmd starts jobs as their user) and Debian's slurm-wlm and
# munge packages. No cgroups (proctrack/linuxproc, task/none), so it also
# runs in containers.
set -euo pipefail

CMD=${1:-}
DIR=${2:-${MMEXT_SLURM_DIR:-/tmp/mmext-slurm}}
export SLURM_CONF="$DIR/slurm.conf"

die() { echo "local_slurm.sh: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port_pair() {
    local p
    for _ in $(seq 50); do
        p=$((30000 + RANDOM % 2000))
        if ! port_in_use "$p" && ! port_in_use $((p + 1)); then
            echo "$p"
            return
        fi
    done
    die 'no free port pair found in 30000-32000; set SLURMCTLD_PORT and SLURMD_PORT'
}

write_conf() {
    local node ctld_port slurmd_port cpus
    node=$(hostname -s)
    # nproc alone would honour OMP_NUM_THREADS
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
    ctld_port=${SLURMCTLD_PORT:-$(free_port_pair)}
    slurmd_port=${SLURMD_PORT:-$((ctld_port + 1))}
    cat > "$SLURM_CONF" <<EOF
# written by tools/misc/local_slurm.sh: a private one-node cluster
ClusterName=mmextlocal
SlurmctldHost=${node}(127.0.0.1)
SlurmctldPort=${ctld_port}
SlurmdPort=${slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${DIR}/munge/munge.socket
StateSaveLocation=${DIR}/state
SlurmdSpoolDir=${DIR}/spool
SlurmctldPidFile=${DIR}/slurmctld.pid
SlurmdPidFile=${DIR}/slurmd.pid
SlurmctldLogFile=${DIR}/slurmctld.log
SlurmdLogFile=${DIR}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=256 State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_idle() {
    local state=''
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %t 2>/dev/null || true)
        case "$state" in
            idle*) return 0 ;;
            down*|drain*|fail*)
                scontrol update nodename="$(hostname -s)" state=resume \
                    >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    die "node not idle after 30 s (state '${state:-no answer}'); see ${DIR}/slurmctld.log and ${DIR}/slurmd.log"
}

start() {
    [ "$(id -u)" = 0 ] || die 'must run as root (slurmd runs jobs as their user)'
    for exe in munged mungekey slurmctld slurmd srun sinfo; do
        command -v "$exe" >/dev/null || die "$exe not found; install Debian's slurm-wlm and munge: apt-get install -y slurm-wlm munge"
    done
    if [ "$(cat "/proc/$(cat "$DIR/slurmctld.pid" 2>/dev/null)/comm" 2>/dev/null)" = slurmctld ]; then
        die "already running from $DIR; run '$0 stop $DIR' first"
    fi
    # whatever started is stopped again if a later step fails
    trap stop EXIT
    mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool"
    # users other than root reach the munge socket through DIR/munge
    chmod 755 "$DIR"
    chmod 711 "$DIR/munge"
    [ -f "$DIR/munge/munge.key" ] || mungekey -c -k "$DIR/munge/munge.key"
    munged -f --socket="$DIR/munge/munge.socket" \
        --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
    write_conf
    slurmctld -i -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF" -N "$(hostname -s)"
    wait_idle
    trap - EXIT
    echo "local Slurm up: export SLURM_CONF=$SLURM_CONF"
}

stop() {
    local pids=() name f pid
    if [ -f "$DIR/slurmctld.pid" ]; then
        scancel --full --quiet --partition=debug 2>/dev/null || true
    fi
    for name in slurmd slurmctld munged; do
        f="$DIR/$name.pid"
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        # a stale pid file may name someone else's process by now
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
            kill "$pid" && pids+=("$pid")
        fi
        rm -f "$f"
    done
    # all at once, each has 5 s to exit
    for _ in $(seq 50); do
        local alive=()
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive+=("$pid")
        done
        pids=("${alive[@]}")
        [ ${#pids[@]} -eq 0 ] && return 0
        sleep 0.1
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
}

case "$CMD" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) die "usage: $0 start|stop|status [DIR]" ;;
esac
