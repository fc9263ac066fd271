#!/usr/bin/env bash
# Bring up (or tear down) a single-node SLURM cluster on this machine, for testing the
# Snakemake SLURM profile. Needs root. Debian/Ubuntu only (installs slurm-wlm and munge with apt).
#
#   tools/slurm/local-slurm.sh start    # install if missing, configure, start, wait until the node is idle
#   tools/slurm/local-slurm.sh stop     # stop slurmctld, slurmd and the munged this script started
#   tools/slurm/local-slurm.sh status   # exit 0 if the node answers and is usable
#
# The node advertises one fake GPU of model `fake` (gres gpu:fake:1 backed by an empty file), so that
# jobs asking for `--gpus=1`, `--gpus=fake:1` or `--gres=gpu:1` are scheduled exactly as on a GPU
# cluster; the jobs themselves run on the CPU. Two partitions hold the node, as on a cluster with CPU
# and GPU partitions: `debug` (the default) and `gpu` (its one node is the same node, so the partition
# a job ran in is recorded, not enforced by hardware). There is no accounting database: use
# `squeue`/`scontrol show job` (finished jobs stay visible for MinJobAge seconds), not `sacct`.
#
# Environment:
#   BMRSPARSE_SLURM_DIR      state, spool, pid and log folder (default /var/lib/bmrsparse-slurm)
#   BMRSPARSE_SLURM_TIMEOUT  seconds to wait for the node to become idle (default 60)
#
# The script writes /etc/slurm/slurm.conf and /etc/slurm/gres.conf and marks them with a header
# line; it refuses to overwrite a slurm.conf that it did not write.
set -euo pipefail
case ${1:-} in  # -h/--help: the usage and the comment block above, nothing run
    -h | --help) echo "usage: tools/slurm/local-slurm.sh start|stop|status"; echo; sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;;
esac

readonly MARKER="# written by bmrsparse tools/slurm/local-slurm.sh"
readonly CONF_DIR=/etc/slurm
readonly STATE_DIR="${BMRSPARSE_SLURM_DIR:-/var/lib/bmrsparse-slurm}"
readonly TIMEOUT="${BMRSPARSE_SLURM_TIMEOUT:-60}"
readonly PARTITION=debug
readonly GPU_PARTITION=gpu
readonly GPU_MODEL=fake

log() { printf 'local-slurm: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
    [[ "$(id -u)" == 0 ]] || die "must run as root (it installs packages and starts system daemons)"
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "slurmctld/slurmd/munged missing and apt-get not available"
    log "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq slurm-wlm munge >/dev/null; then
        apt-get update -qq
        apt-get install -y -qq slurm-wlm munge >/dev/null
    fi
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    log "starting munged"
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
    fi
    # munged refuses to start unless its folders belong to the munge user.
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
    chmod 700 /etc/munge /var/log/munge
    chmod 600 /etc/munge/munge.key
    chmod 755 /run/munge
    su -s /bin/sh munge -c /usr/sbin/munged
    touch "$STATE_DIR/munged.started-here"
    for _ in $(seq 1 20); do
        if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
            return
        fi
        sleep 0.5
    done
    die "munged does not answer (munge -n | unmunge fails); see /var/log/munge/munged.log"
}

write_config() {
    local host cpus mem_mb
    host="$(hostname -s)"
    # `slurmd -C` prints the hardware as slurmd sees it; configure exactly that (a larger value
    # would make slurmd mark the node invalid), minus 5% memory for the daemons themselves.
    cpus="$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -n1)"
    mem_mb="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)"
    [[ -n "$cpus" && -n "$mem_mb" ]] || die "could not read CPUs/RealMemory from 'slurmd -C'"
    mem_mb=$(( mem_mb * 95 / 100 ))

    if [[ -e "$CONF_DIR/slurm.conf" ]] && ! grep -qF "$MARKER" "$CONF_DIR/slurm.conf"; then
        die "$CONF_DIR/slurm.conf exists and was not written by this script; refusing to overwrite it"
    fi
    mkdir -p "$CONF_DIR" "$STATE_DIR"/{ctld,spool,log,run}
    : > "$STATE_DIR/fake-gpu0"

    local tmp
    tmp="$(mktemp "$CONF_DIR/.slurm.conf.XXXXXX")"
    cat > "$tmp" <<EOF
$MARKER
# Single-node test cluster: one node in two partitions (default $PARTITION, and $GPU_PARTITION), one fake GPU
# of model $GPU_MODEL, no accounting.
ClusterName=bmrsparse-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/pgid
# task/none makes srun job steps fail with "cluster configuration lacks support for cpu binding".
TaskPlugin=task/affinity
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Jobs that give no --mem get 1 GiB per CPU (the default would be the whole node).
DefMemPerCPU=1024
# Finished jobs stay visible to squeue/scontrol for 10 minutes (there is no sacct here).
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$GPU_MODEL:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=$GPU_PARTITION Nodes=$host Default=NO MaxTime=INFINITE State=UP
EOF
    install_file "$tmp" "$CONF_DIR/slurm.conf"

    tmp="$(mktemp "$CONF_DIR/.gres.conf.XXXXXX")"
    printf '%s\n# A fake GPU: an empty file stands in for /dev/nvidia0.\nNodeName=%s Name=gpu Type=%s File=%s\n' \
        "$MARKER" "$host" "$GPU_MODEL" "$STATE_DIR/fake-gpu0" > "$tmp"
    install_file "$tmp" "$CONF_DIR/gres.conf"
}

install_file() {  # install_file <tmp> <dest>: replace dest by tmp; CONFIG_CHANGED=1 if it differed
    chmod 644 "$1"
    if cmp -s "$1" "$2"; then
        rm -f "$1"
    else
        mv -f "$1" "$2"
        CONFIG_CHANGED=1
    fi
}

pid_alive() {  # pid_alive <pidfile>
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_state() {
    sinfo --noheader --partition="$PARTITION" --format='%T' 2>/dev/null | head -n1
}

wait_idle() {
    local host state i daemon
    host="$(hostname -s)"
    for (( i = 0; i < TIMEOUT * 2; i++ )); do
        if (( i > 4 )); then  # both daemons write their pid file within a second of starting
            for daemon in slurmctld slurmd; do
                pid_alive "$STATE_DIR/run/$daemon.pid" && continue
                tail -n 5 "$STATE_DIR/log/$daemon.log" >&2 || true
                die "$daemon is not running (log: $STATE_DIR/log/$daemon.log)"
            done
        fi
        state="$(node_state || true)"
        case "$state" in
            idle|mixed|allocated|completing)
                log "node $host is $state"
                return 0 ;;
            down*|drain*|drained*)
                scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    log "node state after ${TIMEOUT}s: '${state:-no answer}'"
    tail -n 20 "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" >&2 || true
    die "the node did not become idle"
}

start() {
    need_root
    install_packages
    mkdir -p "$STATE_DIR"
    start_munge
    CONFIG_CHANGED=0
    write_config
    if (( CONFIG_CHANGED )); then
        if pid_alive "$STATE_DIR/run/slurmctld.pid" || pid_alive "$STATE_DIR/run/slurmd.pid"; then
            log "configuration changed: restarting slurmctld and slurmd"
            stop_slurm
        fi
    elif pid_alive "$STATE_DIR/run/slurmctld.pid" && pid_alive "$STATE_DIR/run/slurmd.pid"; then
        log "slurmctld and slurmd already running"
        wait_idle
        return
    fi
    if ! pid_alive "$STATE_DIR/run/slurmctld.pid"; then
        log "starting slurmctld"
        slurmctld
    fi
    if ! pid_alive "$STATE_DIR/run/slurmd.pid"; then
        log "starting slurmd"
        slurmd -N "$(hostname -s)"
    fi
    wait_idle
    sinfo >&2
}

stop_slurm() {
    local pidfile pid i
    if pid_alive "$STATE_DIR/run/slurmctld.pid"; then
        scontrol shutdown 2>/dev/null || true
    fi
    for pidfile in "$STATE_DIR/run/slurmctld.pid" "$STATE_DIR/run/slurmd.pid"; do
        if pid_alive "$pidfile"; then
            pid="$(cat "$pidfile")"
            for (( i = 0; i < 40; i++ )); do
                kill -0 "$pid" 2>/dev/null || break
                (( i == 10 )) && kill "$pid" 2>/dev/null || true
                sleep 0.5
            done
        fi
    done
}

stop() {
    need_root
    stop_slurm
    if [[ -e "$STATE_DIR/munged.started-here" && -s /run/munge/munged.pid ]]; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
        rm -f "$STATE_DIR/munged.started-here"
    fi
    log "stopped"
}

status() {
    local state
    state="$(node_state || true)"
    case "$state" in
        idle|mixed|allocated|completing) echo "$state"; return 0 ;;
        *) echo "${state:-not running}"; return 1 ;;
    esac
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
