#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1 for tests/test_slurm.py (run as root, e.g. in CI).
#
#   tests/slurm_cluster.sh start    # install if missing, start munge, MariaDB, slurmdbd, slurmctld, slurmd
#   tests/slurm_cluster.sh status   # exit 0 when the node is up (idle/mixed/allocated)
#   tests/slurm_cluster.sh stop     # stop what start started, by PID files
#   tests/slurm_cluster.sh clean    # stop, then delete the state directory
#
# The node has the machine's real CPUs and ~90% of its memory, and declares one pretend GPU
# (gres.conf File=/dev/null) so that `gpu: 1` rules are scheduled as GPU jobs.
# Accounting runs (slurmdbd + MariaDB) because the Snakemake SLURM plugin polls `sacct`, and
# the tests read AllocTRES from it.  Account "swag" is created for user root.
#
# Exit codes: 0 ok, 2 usage, 3 packages missing and apt-get could not install them,
#             4 not root, 5 a daemon did not come up (its log is printed).
#
# Environment: SWAG_SLURM_STATE (state dir, default /tmp/swag-slurm), SWAG_SLURM_DB_PORT (33061).
set -euo pipefail

STATE=${SWAG_SLURM_STATE:-/tmp/swag-slurm}
DB_PORT=${SWAG_SLURM_DB_PORT:-33061}
CLUSTER=swagtest
ACCOUNT=swag
PARTITION=debug
NODE=$(hostname -s)
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

log() { echo "slurm_cluster: $*" >&2; }
die() { local code=$1; shift; log "ERROR: $*"; exit "$code"; }

pid_alive() {  # pid_alive FILE: the PID in FILE is a running process
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.25 s
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then return 1; fi
        sleep 0.25
    done
}

fail_with_log() {  # fail_with_log LOGFILE MESSAGE
    log "$2; last lines of $1:"
    tail -n 30 "$1" >&2 2>/dev/null || true
    exit 5
}

node_state() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1; }
node_up() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing) ]]; }

install_packages() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die 3 "packages missing (${missing[*]}) and there is no apt-get"
    log "installing ${missing[*]}"
    # policy-rc.d keeps the packages' own init scripts from starting daemons we start ourselves.
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$STATE/apt.log" 2>&1 \
        || { tail -n 20 "$STATE/apt.log" >&2; die 3 "apt-get could not install ${missing[*]}"; }
}

write_configs() {
    # CPUs/sockets/cores from slurmd -C; RealMemory lowered to 90% so slurmd never reports less
    # than the configuration says (which would drain the node).
    local hardware memory
    hardware=$(slurmd -C | head -n1)
    memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hardware")
    hardware=$(sed -e "s/RealMemory=[0-9]*/RealMemory=$((memory * 9 / 10))/" \
        -e "s/^NodeName=[^ ]*/NodeName=$NODE NodeAddr=127.0.0.1/" <<<"$hardware")

    cat >"$STATE/slurm.conf.new" <<EOF
# Written by tests/slurm_cluster.sh; test cluster only.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# Containers have no usable cgroups for SLURM: track processes by parent PID.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# Finished jobs stay visible to squeue for 5 min (plugin status checks may use squeue).
MinJobAge=300
ReturnToService=2
# Short waits so that a cancelled or timed-out job ends within seconds.
KillWait=10
InactiveLimit=0
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
# sacct then shows the plugin's job comment, which names the rule and wildcards.
AccountingStoreFlags=job_comment
$hardware Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    # File= is required: without it slurmd drops the GPU and the node goes INVAL.
    cat >"$STATE/gres.conf.new" <<EOF
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null Count=1
EOF
    cat >"$STATE/slurmdbd.conf.new" <<EOF
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=swag-test-only
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$STATE/slurmdbd.conf.new"
    local name
    CONFIG_CHANGED=0
    for name in slurm.conf gres.conf slurmdbd.conf; do
        if cmp -s "$STATE/$name.new" "$STATE/$name"; then
            rm -f "$STATE/$name.new"
        else
            mv "$STATE/$name.new" "$STATE/$name"
            CONFIG_CHANGED=1
        fi
        # SLURM_CONF alone is not enough: the jobstep plugin strips SLURM_* before srun.
        local target=/etc/slurm/$name
        if [[ -e $target && ! -L $target ]]; then
            die 5 "$target exists and is not our symlink; refusing to replace a real SLURM config"
        fi
        ln -sfn "$STATE/$name" "$target"
    done
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged is already serving the default socket (ours or the system's)
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE/munged.ours"
    wait_for 10 munge bash -c 'munge -n | unmunge' \
        || fail_with_log /var/log/munge/munged.log "munged did not start"
}

start_mariadb() {
    pid_alive "$STATE/mariadb.pid" && return 0
    local sql=(mariadb --no-defaults --socket="$STATE/mariadb.sock" -u root)
    if [[ ! -d $STATE/mariadb/mysql ]]; then
        rm -rf "$STATE/mariadb"
        mariadb-install-db --no-defaults --user=root --datadir="$STATE/mariadb" \
            --auth-root-authentication-method=socket >"$STATE/mariadb-install.log" 2>&1 \
            || fail_with_log "$STATE/mariadb-install.log" "mariadb-install-db failed"
    fi
    # setsid + redirections: the server must not hold the caller's stdout/stderr pipes open.
    setsid mariadbd --no-defaults --user=root --datadir="$STATE/mariadb" --socket="$STATE/mariadb.sock" \
        --pid-file="$STATE/mariadb.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
        --log-error="$STATE/mariadb.log" --innodb-buffer-pool-size=64M \
        </dev/null >>"$STATE/mariadb.out" 2>&1 &
    wait_for 60 mariadb "${sql[@]}" -e 'SELECT 1' \
        || fail_with_log "$STATE/mariadb.log" "MariaDB did not start"
    "${sql[@]}" <<'EOF'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'swag-test-only';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'swag-test-only';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

start_slurm() {
    mkdir -p "$STATE/slurmctld" "$STATE/slurmd"
    if ! pid_alive "$STATE/slurmdbd.pid"; then
        slurmdbd
        wait_for 30 slurmdbd sacctmgr -n list cluster \
            || fail_with_log "$STATE/slurmdbd.log" "slurmdbd did not answer sacctmgr"
    fi
    # The cluster must exist in the database before slurmctld registers with it.
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if ! sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT"; then
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=swag-tests organization=swag >/dev/null
    fi
    if ! sacctmgr -n -P list association format=account,user where user=root account="$ACCOUNT" | grep -q .; then
        sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    fi
    if ! pid_alive "$STATE/slurmctld.pid"; then
        slurmctld
        wait_for 30 slurmctld scontrol ping \
            || fail_with_log "$STATE/slurmctld.log" "slurmctld did not answer scontrol ping"
    fi
    if ! pid_alive "$STATE/slurmd.pid"; then
        slurmd
    fi
    if ! wait_for 60 "node $NODE idle" node_up; then
        log "node state: $(node_state)"
        fail_with_log "$STATE/slurmd.log" "node $NODE did not become idle"
    fi
}

stop_pidfile() {  # stop_pidfile NAME FILE: SIGTERM, wait up to 15 s, then SIGKILL
    local name=$1 file=$2 pid
    pid_alive "$file" || { rm -f "$file"; return 0; }
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) ignored SIGTERM; killing"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

cmd_start() {
    ((EUID == 0)) || die 4 "must run as root (it installs packages and starts daemons)"
    mkdir -p "$STATE" /etc/slurm
    install_packages
    write_configs
    if pid_alive "$STATE/slurmctld.pid" && pid_alive "$STATE/slurmd.pid" && node_up; then
        if ((CONFIG_CHANGED == 0)); then
            log "already running (node $NODE $(node_state))"
            return 0
        fi
        log "configuration changed: restarting the SLURM daemons"
        stop_slurm_daemons
    fi
    start_munge
    start_mariadb
    start_slurm
    log "up: node $NODE $(node_state), partition $PARTITION, account $ACCOUNT, state in $STATE"
}

stop_slurm_daemons() {
    stop_pidfile slurmd "$STATE/slurmd.pid"
    stop_pidfile slurmctld "$STATE/slurmctld.pid"
    stop_pidfile slurmdbd "$STATE/slurmdbd.pid"
}

cmd_stop() {
    stop_slurm_daemons
    stop_pidfile mariadb "$STATE/mariadb.pid"
    if [[ -e $STATE/munged.ours ]]; then
        stop_pidfile munged /run/munge/munged.pid
        rm -f "$STATE/munged.ours"
    fi
    local name
    for name in slurm.conf gres.conf slurmdbd.conf; do
        if [[ -L /etc/slurm/$name && $(readlink "/etc/slurm/$name") == "$STATE/$name" ]]; then
            rm -f "/etc/slurm/$name"
        fi
    done
    log "stopped"
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) node_up && log "node $NODE $(node_state)" || { log "not running"; exit 5; } ;;
    clean) cmd_stop; rm -rf "$STATE" ;;
    *) echo "usage: $0 start|status|stop|clean" >&2; exit 2 ;;
esac
