#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the test suite and for trying the
# project's Slurm profile locally.
#
#   tests/slurm/local_cluster.sh start    install missing Debian packages (slurmctld slurmd
#                                         slurm-client munge; through apt-get, with sudo when
#                                         not root), write the config and start a private
#                                         munged, slurmctld and slurmd; wait until the node is
#                                         idle; print `export SLURM_CONF=...`. A no-op when the
#                                         cluster already runs.
#   tests/slurm/local_cluster.sh stop     cancel the cluster's jobs, stop its daemons (and any
#                                         job step left behind), keep the logs. Idempotent.
#   tests/slurm/local_cluster.sh status   exit 0 when the node is up (idle/mixed/allocated).
#   tests/slurm/local_cluster.sh env      print `export SLURM_CONF=...`, for
#                                         eval "$(tests/slurm/local_cluster.sh env)"
#
# Everything (slurm.conf, gres.conf, munge key and socket, spool and state directories,
# logs, pid files, the job completion log jobcomp.log) lives in the state directory
# ${EQUIVDYN_SLURM_DIR:-/tmp/equivdyn-slurm}; nothing under /etc is read or changed, and a
# Slurm or munge the machine already runs is left alone (this cluster uses its own munge
# socket and the ports ${EQUIVDYN_SLURM_PORT:-16817} (slurmctld) and that + 1 (slurmd)).
# Slurm commands find this cluster through SLURM_CONF=<state dir>/slurm.conf.
#
# The node is this host with all its CPUs (EQUIVDYN_SLURM_CPUS to declare another count),
# about 90 % of its memory (EQUIVDYN_SLURM_MEMORY_MB) and one GPU that
# exists only as a name (gres/gpu with File=/dev/null), so that `--gpus=1` jobs are
# scheduled on machines without a GPU. No accounting database: `sacct` fails ("Slurm
# accounting storage is disabled", exit 1), so the Snakemake executor plugin needs
# `--slurm-status-command squeue`; finished jobs stay visible to `squeue --states=all`
# and `scontrol show job` for an hour (MinJobAge=3600) and are recorded in
# <state dir>/jobcomp.log (also readable with `sacct -c`). Each `start` begins with an
# empty queue; job ids go on from the largest one in jobcomp.log.
#
# <state dir>/bin holds srun, sbatch, squeue, ... wrappers that set SLURM_CONF themselves,
# and a TaskProlog puts it first on PATH in every job: inside a job, Snakemake's job step
# executor drops all SLURM_* variables (SLURM_CONF too) before it calls srun, which then
# could not find this cluster. Snakemake's Slurm executor also needs
# `--slurm-status-command squeue` here, since sacct has no accounting to read.
set -euo pipefail

PROG=local_cluster
STATE_DIR=${EQUIVDYN_SLURM_DIR:-/tmp/equivdyn-slurm}
CTLD_PORT=${EQUIVDYN_SLURM_PORT:-16817}
SLURMD_PORT=$((CTLD_PORT + 1))
START_TIMEOUT=60
PACKAGES=(slurmctld slurmd slurm-client munge)

msg() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { msg "error: $*"; exit 1; }

case "$STATE_DIR" in
    /*) ;;
    *) STATE_DIR="$PWD/$STATE_DIR" ;;
esac
[[ "$STATE_DIR" =~ ^[A-Za-z0-9_./+-]+$ ]] \
    || die "EQUIVDYN_SLURM_DIR='$STATE_DIR' must be a path of letters, digits and ._/+- only (slurm.conf cannot quote it)"
STATE_DIR=${STATE_DIR%/}

CONF="$STATE_DIR/slurm.conf"
MUNGE_DIR="$STATE_DIR/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket"
MUNGE_KEY="$MUNGE_DIR/munge.key"
RUN_DIR="$STATE_DIR/run"
LOG_DIR="$STATE_DIR/log"
CTLD_STATE="$STATE_DIR/slurmctld"
SLURMD_SPOOL="$STATE_DIR/slurmd"
JOBCOMP_LOG="$STATE_DIR/jobcomp.log"
PID_MUNGED="$RUN_DIR/munged.pid"
PID_CTLD="$RUN_DIR/slurmctld.pid"
PID_SLURMD="$RUN_DIR/slurmd.pid"
LOG_MUNGED="$LOG_DIR/munged.log"
LOG_CTLD="$LOG_DIR/slurmctld.log"
LOG_SLURMD="$LOG_DIR/slurmd.log"

# The Unix socket path must fit in sun_path (108 bytes).
((${#MUNGE_SOCKET} < 100)) || die "state directory path too long for a Unix socket: $STATE_DIR"

export SLURM_CONF="$CONF"

node_name() {
    local h
    h=$(hostname -s 2>/dev/null || true)
    [[ -n "$h" ]] || h=$(uname -n)
    printf '%s\n' "${h%%.*}"
}
NODE=$(node_name)

# ---------------------------------------------------------------------------- packages

install_packages() {
    # the one installer of the tests' Debian packages
    bash "$(dirname "${BASH_SOURCE[0]}")/../system_packages.sh" "${PACKAGES[@]}" || die "the Slurm packages are missing (see above)"
}

# ---------------------------------------------------------------------------- processes

# A process that exists and is not a zombie. (Where PID 1 reaps orphans only now and then,
# as in some container sandboxes, a daemon that exited stays a zombie for seconds.)
running() { # pid
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ -n "$stat" && ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# pid from a pid file when that process is alive and is the expected program
live_pid() { # pidfile comm
    local pidfile=$1 comm=$2 pid
    [[ -r $pidfile ]] || return 1
    pid=$(tr -dc '0-9' 2>/dev/null <"$pidfile" || true)
    [[ -n "$pid" ]] || return 1
    running "$pid" || return 1
    local c
    c=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    [[ "$c" == "$comm"* ]] || return 1
    printf '%s\n' "$pid"
}

# slurmstepd processes (job steps) started by this cluster's slurmd: they carry this
# cluster's SLURM_CONF in their environment.
stray_stepds() {
    local d pid
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [[ "$(cat "$d/comm" 2>/dev/null || true)" == slurmstepd ]] || continue
        if tr '\0' '\n' 2>/dev/null <"$d/environ" | grep -qxF "SLURM_CONF=$CONF"; then
            printf '%s\n' "$pid"
        fi
    done
}

# All descendants of the given pids (children before grandchildren).
descendants() { # pid...
    local -A parent=()
    local d stat pid
    for d in /proc/[0-9]*; do
        stat=$(cat "$d/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        read -r _ pid _ <<<"$stat"
        parent[${d#/proc/}]=$pid
    done
    local frontier=("$@") next found=()
    while ((${#frontier[@]})); do
        next=()
        for pid in "${!parent[@]}"; do
            for d in "${frontier[@]}"; do
                if [[ ${parent[$pid]} == "$d" ]]; then
                    next+=("$pid")
                    break
                fi
            done
        done
        found+=("${next[@]-}")
        frontier=()
        for pid in "${next[@]-}"; do [[ -n "$pid" ]] && frontier+=("$pid"); done
    done
    for pid in "${found[@]-}"; do [[ -n "$pid" ]] && printf '%s\n' "$pid"; done
    return 0
}

# SIGTERM, wait up to 10 s, then SIGKILL and wait until gone.
kill_and_wait() { # name pid...
    local name=$1
    shift
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    wait_gone "$@" && return 0
    msg "$name (pid ${ALIVE[*]}) did not stop within 10 s; sending SIGKILL"
    kill -KILL "${ALIVE[@]}" 2>/dev/null || true
    wait_gone "$@" || die "$name (pid ${ALIVE[*]}) survives SIGKILL"
}

# Wait up to 10 s until none of the pids runs; those still running are left in ALIVE.
wait_gone() { # pid...
    local pid i
    for ((i = 0; i < 100; i++)); do
        ALIVE=()
        for pid in "$@"; do running "$pid" && ALIVE+=("$pid"); done
        ((${#ALIVE[@]})) || return 0
        sleep 0.1
    done
    return 1
}

STOPPED=()
stop_daemon() { # pidfile comm
    local pid
    if pid=$(live_pid "$1" "$2"); then
        kill_and_wait "$2" "$pid"
        STOPPED+=("$pid")
    fi
    rm -f "$1"
}

# Wait (at most 5 s) until PID 1 has reaped what was stopped, so that `ps` no longer
# lists it; a zombie runs nothing, so this is cosmetic and never fails.
wait_reaped() {
    local i pid left
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "${STOPPED[@]-}"; do [[ -n "$pid" && -e /proc/$pid ]] && left=1; done
        ((left)) || return 0
        sleep 0.1
    done
    return 0
}

port_in_use() { # port
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

node_state() {
    timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1
}

node_up() {
    case "$(node_state)" in
        idle | mixed | allocated | completing | planned) return 0 ;;
        *) return 1 ;;
    esac
}

all_daemons_alive() {
    live_pid "$PID_MUNGED" munged >/dev/null &&
        live_pid "$PID_CTLD" slurmctld >/dev/null &&
        live_pid "$PID_SLURMD" slurmd >/dev/null
}

any_daemon_alive() {
    live_pid "$PID_MUNGED" munged >/dev/null ||
        live_pid "$PID_CTLD" slurmctld >/dev/null ||
        live_pid "$PID_SLURMD" slurmd >/dev/null
}

show_logs() {
    local f
    for f in "$LOG_MUNGED" "$LOG_CTLD" "$LOG_SLURMD"; do
        [[ -e $f ]] || continue
        msg "---- last lines of $f"
        tail -n 25 "$f" >&2 || true
    done
}

# ---------------------------------------------------------------------------- config

write_config() {
    local cpus mem_kb real_mem slurm_user slurmd_user first_id
    cpus=${EQUIVDYN_SLURM_CPUS:-$(nproc)}
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    real_mem=${EQUIVDYN_SLURM_MEMORY_MB:-$((mem_kb * 9 / 10 / 1024))}
    slurm_user=$(id -un)
    if [[ $(id -u) -eq 0 ]]; then slurmd_user=root; else slurmd_user=$slurm_user; fi
    # Each start is a cold start (empty queue); keep job ids unique in jobcomp.log.
    first_id=1
    if [[ -s $JOBCOMP_LOG ]]; then
        first_id=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^JobId=[0-9]+$/) {
                       v = substr($i, 7) + 0; if (v > m) m = v } }
                       END {print m + 1}' "$JOBCOMP_LOG")
    fi

    cat >"$CONF.tmp" <<EOF
# Written by tests/slurm/local_cluster.sh; rewritten at each start.
ClusterName=equivdyn
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$slurm_user
SlurmdUser=$slurmd_user

AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET

StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$PID_CTLD
SlurmdPidFile=$PID_SLURMD
SlurmctldLogFile=$LOG_CTLD
SlurmdLogFile=$LOG_SLURMD
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$STATE_DIR/plugstack.conf
TaskProlog=$STATE_DIR/task_prolog.sh
MailProg=/bin/true
FirstJobId=$first_id

# No cgroups needed (containers often have none usable).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
PropagateResourceLimits=NONE
MpiDefault=none
SwitchType=switch/none

# No accounting database; the scheduler records every finished job in jobcomp.log and
# keeps it visible to squeue/scontrol for an hour.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
MinJobAge=3600

SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=5,sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
GresTypes=gpu

# Short timeouts: a test cluster on one machine.
SlurmctldTimeout=10
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=5
Waittime=0
ReturnToService=2

NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$real_mem Gres=gpu:1 State=UNKNOWN
SlurmdParameters=config_overrides
PartitionName=main Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    mv -f "$CONF.tmp" "$CONF"

    # A GPU that is only a name. slurmd 22.05 drops a gres/gpu without File= ("Removing
    # file-less GPU gpu:(null) from final GRES list", and slurmctld then sets the node
    # INVAL: "gres/gpu count reported lower than configured (0 < 1)"), and a File= that is
    # not a device is logged as an error; /dev/null is a character device on every machine
    # and nothing opens it (task/none: no device cgroup). Jobs given the GPU see
    # CUDA_VISIBLE_DEVICES=0.
    cat >"$STATE_DIR/gres.conf" <<EOF
# Written by tests/slurm/local_cluster.sh.
AutoDetect=off
NodeName=$NODE Name=gpu Count=1 File=/dev/null
EOF
    : >"$STATE_DIR/plugstack.conf"

    # Client commands bound to this cluster whatever the environment says: Snakemake's
    # job step executor (snakemake-executor-plugin-slurm-jobstep 0.6.1) removes every
    # SLURM_* variable, SLURM_CONF included, before its `srun` inside a job, and that srun
    # then finds no configuration ("srun: fatal: Could not establish a configuration
    # source") or, worse, the machine's own /etc/slurm/slurm.conf. The TaskProlog puts
    # <state dir>/bin first on PATH in every job (slurmstepd adds the `export` lines it
    # prints to the task's environment).
    cat >"$STATE_DIR/task_prolog.sh" <<EOF
#!/bin/sh
# Written by tests/slurm/local_cluster.sh.
case ":\$PATH:" in
    *":$STATE_DIR/bin:"*) ;;
    *) echo "export PATH=$STATE_DIR/bin:\$PATH" ;;
esac
EOF
    chmod 0755 "$STATE_DIR/task_prolog.sh"
    local bin="$STATE_DIR/bin" c real
    mkdir -p "$bin"
    for c in srun sbatch salloc squeue scancel scontrol sinfo sacct sstat; do
        real=$(PATH="${PATH//$bin:/}" command -v "$c" 2>/dev/null) || continue
        [[ $real == "$bin/$c" ]] && continue
        printf '#!/bin/sh\n# Written by tests/slurm/local_cluster.sh.\nSLURM_CONF=%s\nexport SLURM_CONF\nexec %s "$@"\n' \
            "$CONF" "$real" >"$bin/$c.tmp"
        chmod 0755 "$bin/$c.tmp"
        mv -f "$bin/$c.tmp" "$bin/$c"
    done
}

make_munge_key() {
    [[ -s $MUNGE_KEY ]] && { chmod 0400 "$MUNGE_KEY"; return 0; }
    rm -f "$MUNGE_KEY"
    if ! mungekey --create --keyfile="$MUNGE_KEY" >/dev/null 2>&1; then
        rm -f "$MUNGE_KEY"
        (umask 077 && dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none)
    fi
    chmod 0400 "$MUNGE_KEY"
}

# ---------------------------------------------------------------------------- commands

cmd_start() {
    install_packages
    PATH="$PATH:/usr/sbin:/sbin"

    if all_daemons_alive && node_up; then
        msg "already running ($STATE_DIR)"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    if any_daemon_alive || [[ -n "$(stray_stepds)" ]]; then
        msg "a part of the cluster is running but the node is not up; restarting"
        cmd_stop
    fi
    local p
    for p in "$CTLD_PORT" "$SLURMD_PORT"; do
        if port_in_use "$p"; then
            die "port $p is in use by another program (another slurmctld/slurmd?); this cluster does not start; stop that program or set EQUIVDYN_SLURM_PORT to another port (slurmctld uses it, slurmd the next one)"
        fi
    done

    local t0=$SECONDS
    if [[ -e $STATE_DIR && ! -w $STATE_DIR ]]; then
        die "the state directory $STATE_DIR is not writable by $(id -un); set EQUIVDYN_SLURM_DIR to another one"
    fi
    mkdir -p "$STATE_DIR" "$RUN_DIR" "$LOG_DIR" "$CTLD_STATE" "$SLURMD_SPOOL" "$MUNGE_DIR"
    chmod 0755 "$STATE_DIR" "$RUN_DIR" "$LOG_DIR" "$MUNGE_DIR"
    chmod 0700 "$CTLD_STATE"
    # slurmd's spool keeps no state that must survive a cold start.
    rm -rf "${SLURMD_SPOOL:?}"/*
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock" "$PID_MUNGED" "$PID_CTLD" "$PID_SLURMD"
    touch "$JOBCOMP_LOG"
    write_config
    make_munge_key

    local stamp
    stamp=$(date '+%Y-%m-%dT%H:%M:%S')
    for p in "$LOG_MUNGED" "$LOG_CTLD" "$LOG_SLURMD"; do
        echo "==== $PROG start $stamp" >>"$p"
    done

    local force=()
    [[ $(id -u) -eq 0 ]] && force=(--force)
    if ! munged "${force[@]}" --socket="$MUNGE_SOCKET" --key-file="$MUNGE_KEY" \
        --pid-file="$PID_MUNGED" --log-file="$LOG_MUNGED" \
        --seed-file="$MUNGE_DIR/munged.seed" </dev/null >>"$LOG_MUNGED" 2>&1; then
        show_logs
        die "munged did not start"
    fi
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -S $MUNGE_SOCKET ]] && live_pid "$PID_MUNGED" munged >/dev/null && break
        sleep 0.1
    done
    [[ -S $MUNGE_SOCKET ]] || { show_logs; cmd_stop >/dev/null 2>&1 || true; die "munged did not create its socket $MUNGE_SOCKET"; }

    # -c: cold start, no jobs or node state carried over from a previous run.
    if ! slurmctld -c -f "$CONF" </dev/null >>"$LOG_CTLD" 2>&1; then
        show_logs
        cmd_stop >/dev/null 2>&1 || true
        die "slurmctld did not start"
    fi
    if ! slurmd -f "$CONF" -N "$NODE" </dev/null >>"$LOG_SLURMD" 2>&1; then
        show_logs
        cmd_stop >/dev/null 2>&1 || true
        die "slurmd did not start"
    fi

    local deadline=$((SECONDS + START_TIMEOUT)) state=
    while ((SECONDS < deadline)); do
        state=$(node_state || true)
        [[ $state == idle ]] && break
        # A node that registered with a configuration slurmctld rejects stays so.
        [[ $state == inval ]] && break
        if ! live_pid "$PID_CTLD" slurmctld >/dev/null && ((SECONDS - t0 > 5)); then
            break
        fi
        sleep 0.2
    done
    if [[ $state != idle ]]; then
        if [[ $state == inval ]]; then
            msg "slurmctld rejected the node's configuration (state: inval; see 'Reason' in slurmctld.log)"
        else
            msg "the node did not become idle within ${START_TIMEOUT} s (state: '${state:-no answer}')"
        fi
        for p in munged:"$PID_MUNGED" slurmctld:"$PID_CTLD" slurmd:"$PID_SLURMD"; do
            live_pid "${p#*:}" "${p%%:*}" >/dev/null || msg "${p%%:*} is not running"
        done
        show_logs
        cmd_stop >/dev/null 2>&1 || true
        exit 1
    fi
    msg "running in $STATE_DIR (node $NODE, up after $((SECONDS - t0)) s)"
    echo "export SLURM_CONF=$CONF"
}

cmd_stop() {
    PATH="$PATH:/usr/sbin:/sbin"
    if live_pid "$PID_CTLD" slurmctld >/dev/null && [[ -r $CONF ]]; then
        # Cancel what is still queued or running, so that jobcomp.log records it and no
        # job process outlives the cluster.
        if [[ -n "$(timeout 10 squeue -h -o %i -t PD,R,CG,S,CF 2>/dev/null || true)" ]]; then
            timeout 10 scancel -p main 2>/dev/null || true
            local i n=100
            # Without slurmd the jobs cannot end; their processes are killed below.
            live_pid "$PID_SLURMD" slurmd >/dev/null || n=0
            for ((i = 0; i < n; i++)); do
                [[ -z "$(timeout 5 squeue -h -o %i -t PD,R,CG,S,CF,SO 2>/dev/null || true)" ]] && break
                sleep 0.1
            done
        fi
    fi
    stop_daemon "$PID_SLURMD" slurmd
    # Job steps that survive their slurmd (it was killed, say) belong to this cluster too,
    # and so do the job processes under them.
    local stepds jobprocs
    mapfile -t stepds < <(stray_stepds)
    if ((${#stepds[@]})); then
        mapfile -t jobprocs < <(descendants "${stepds[@]}")
        msg "killing job steps left behind: slurmstepd ${stepds[*]} and ${#jobprocs[@]} job processes"
        ((${#jobprocs[@]})) && { kill -KILL "${jobprocs[@]}" 2>/dev/null || true; }
        kill_and_wait slurmstepd "${stepds[@]}"
        STOPPED+=("${stepds[@]}" "${jobprocs[@]}")
    fi
    stop_daemon "$PID_CTLD" slurmctld
    stop_daemon "$PID_MUNGED" munged
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    wait_reaped
    return 0
}

cmd_status() {
    PATH="$PATH:/usr/sbin:/sbin"
    if all_daemons_alive && node_up; then
        msg "up ($(node_state)) in $STATE_DIR"
        return 0
    fi
    msg "not running ($STATE_DIR)"
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *)
        echo "usage: $0 start|stop|status|env" >&2
        exit 2
        ;;
esac
