#!/usr/bin/env bash
# tests/harness/pgcluster.sh: starts and stops the two throw-away PostgreSQL 15 clusters ("old" and
# "new") that the integration tests, the demo and the benchmarks run pgdual against.
#
#   pgcluster.sh start DIR                 initdb + start DIR/old and DIR/new, write DIR/cluster.env
#   pgcluster.sh stop DIR                  stop both (-m immediate) and remove DIR; never fails
#   pgcluster.sh stop-one DIR old|new [MODE]   stop one cluster (MODE: smart|fast|immediate, default fast)
#   pgcluster.sh start-one DIR old|new     start one stopped cluster again on its port
#   pgcluster.sh free-port                 print a loopback port nothing listens on now
#
# DIR/cluster.env holds KEY=VALUE lines (no quotes, no spaces) for shell `source` and C parsers:
#   OLD_PORT NEW_PORT PGHOST PGUSER PG_BIN CLUSTER_DIR SOCKET_DIR OLD_DATA NEW_DATA
# As root, initdb and pg_ctl run as the OS user `postgres` (PostgreSQL refuses to run as root).
# If DIR is not reachable by that user, or too long for a unix socket path, the clusters live in
# a mktemp directory under /tmp and DIR becomes a symlink to it.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PORT_MIN=20000
PORT_SPAN=40000
START_TRIES=8

die() {
    echo "pgcluster: $*" >&2
    exit 1
}

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# Runs a command as the cluster owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

port_in_use() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        [[ -n "$(ss -Htan "( sport = :$port )" 2>/dev/null)" ]] && return 0
    fi
    # Fallback and double check: something accepts on it.
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    return 1
}

pick_port() {
    local avoid=${1:-0} port i
    for ((i = 0; i < 200; i++)); do
        port=$((PORT_MIN + (RANDOM * 32768 + RANDOM) % PORT_SPAN))
        [[ $port -eq $avoid ]] && continue
        port_in_use "$port" || {
            echo "$port"
            return 0
        }
    done
    die "no free loopback port found"
}

# Physical directory that holds the clusters (DIR itself, or the /tmp target of its symlink).
real_dir() { (cd "$1" && pwd -P); }

owner_can_use() {
    local dir=$1
    as_owner test -d "$dir" -a -w "$dir" -a -x "$dir" 2>/dev/null
}

# Creates DIR (or DIR -> /tmp/pgdual-pg.XXXXXX) owned by the cluster owner; prints the real path.
make_cluster_dir() {
    local dir=$1 real
    mkdir -p "$dir"
    real=$(real_dir "$dir")
    if is_root; then
        chown postgres:postgres "$real"
        chmod 0755 "$real"
    fi
    # Unix socket paths are limited to 107 bytes: "/.s.PGSQL.NNNNN.lock" must still fit.
    if owner_can_use "$real" && ((${#real} <= 80)); then
        echo "$real"
        return 0
    fi
    rmdir "$real"
    real=$(mktemp -d /tmp/pgdual-pg.XXXXXX)
    ln -s "$real" "$dir"
    if is_root; then
        chown postgres:postgres "$real"
        chmod 0755 "$real"
    fi
    owner_can_use "$real" || die "$real is not usable by the cluster owner"
    echo "$real"
}

write_conf() {
    local data=$1 port=$2 sockdir=$3
    as_owner tee -a "$data/postgresql.conf" >/dev/null <<EOF

# --- pgdual test harness ---
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sockdir'
max_connections = 600
fsync = off
# A commit is written to the kernel before it is acknowledged (no fsync: fsync is off), so a
# test that stops a cluster with -m immediate right after a write never loses it, however slow
# or fast the machine. With 'off' the WAL writer decides, and a fast stop lost the commit.
synchronous_commit = on
full_page_writes = off
shared_buffers = 64MB
logging_collector = off
log_min_messages = warning
EOF
}

set_port() {
    local data=$1 port=$2
    as_owner sed -i "s/^port = [0-9]*\$/port = $port/" "$data/postgresql.conf"
}

wait_ready() {
    local port=$1 i
    for ((i = 0; i < 300; i++)); do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Starts one cluster; on failure (usually a port taken between our check and the bind) tries
# another port. Prints the port it ended up on.
start_with_retry() {
    local data=$1 port=$2 avoid=$3 try
    for ((try = 1; try <= START_TRIES; try++)); do
        set_port "$data" "$port"
        if as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$data.log" -w -t 30 -s start >&2 &&
            wait_ready "$port"; then
            echo "$port"
            return 0
        fi
        echo "pgcluster: start of $data on port $port failed (try $try); log tail:" >&2
        tail -n 5 "$data.log" >&2 || true
        as_owner "$PG_BIN/pg_ctl" -D "$data" -m immediate -s stop >/dev/null 2>&1 || true
        port=$(pick_port "$avoid")
    done
    return 1
}

cmd_start() {
    local dir=$1 real old_port new_port side
    [[ -x "$PG_BIN/initdb" ]] || die "$PG_BIN/initdb not found (run tools/install-deps.sh)"
    if is_root; then
        id postgres >/dev/null 2>&1 || die "running as root needs the OS user postgres"
    fi
    # A leftover from an aborted run is removed first, so `start` always yields fresh clusters.
    cmd_stop "$dir"
    real=$(make_cluster_dir "$dir")

    for side in old new; do
        as_owner "$PG_BIN/initdb" -D "$real/$side" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 --no-sync >"$real/$side.initdb.log" 2>&1 ||
            {
                cat "$real/$side.initdb.log" >&2
                die "initdb $side failed"
            }
        write_conf "$real/$side" 0 "$real"
    done

    old_port=$(pick_port 0)
    old_port=$(start_with_retry "$real/old" "$old_port" 0) || die "could not start old"
    new_port=$(pick_port "$old_port")
    new_port=$(start_with_retry "$real/new" "$new_port" "$old_port") || die "could not start new"

    cat >"$real/cluster.env" <<EOF
OLD_PORT=$old_port
NEW_PORT=$new_port
PGHOST=127.0.0.1
PGUSER=postgres
PG_BIN=$PG_BIN
CLUSTER_DIR=$dir
SOCKET_DIR=$real
OLD_DATA=$real/old
NEW_DATA=$real/new
EOF
    chmod 0644 "$real/cluster.env"
    echo "pgcluster: old on 127.0.0.1:$old_port, new on 127.0.0.1:$new_port ($dir/cluster.env)"
}

stop_side() {
    local real=$1 side=$2 mode=$3
    if [[ -f "$real/$side/postmaster.pid" ]]; then
        as_owner "$PG_BIN/pg_ctl" -D "$real/$side" -m "$mode" -w -t 30 -s stop >&2 || return 1
    fi
    return 0
}

cmd_stop() {
    local dir=$1 real side
    if [[ ! -e "$dir" && ! -L "$dir" ]]; then
        return 0
    fi
    if [[ -d "$dir" ]]; then
        real=$(real_dir "$dir")
        for side in old new; do
            stop_side "$real" "$side" immediate || true
        done
        rm -rf "$real"
    fi
    rm -rf "$dir"
    return 0
}

check_side() {
    [[ "$1" == old || "$1" == new ]] || die "side must be old or new, not '$1'"
    [[ -f "$2/cluster.env" ]] || die "$2/cluster.env not found (run start first)"
}

cmd_stop_one() {
    local dir=$1 side=$2 mode=${3:-fast}
    check_side "$side" "$dir"
    stop_side "$(real_dir "$dir")" "$side" "$mode" || die "stopping $side failed"
}

cmd_start_one() {
    local dir=$1 side=$2 real port
    check_side "$side" "$dir"
    real=$(real_dir "$dir")
    port=$(sed -n "s/^${side^^}_PORT=//p" "$real/cluster.env")
    if [[ -f "$real/$side/postmaster.pid" ]] && wait_ready "$port"; then
        return 0
    fi
    as_owner "$PG_BIN/pg_ctl" -D "$real/$side" -l "$real/$side.log" -w -t 30 -s start >&2 ||
        die "starting $side failed"
    wait_ready "$port" || die "$side does not accept connections on $port"
}

main() {
    if [[ "${1:-}" == free-port ]]; then
        pick_port 0
        return
    fi
    [[ $# -ge 2 ]] || usage
    local cmd=$1 dir=$2
    [[ -n "$dir" ]] || usage
    dir=${dir%/}
    [[ "$dir" == /* ]] || dir=$PWD/$dir
    case "$cmd" in
    start) cmd_start "$dir" ;;
    stop) cmd_stop "$dir" ;;
    stop-one) cmd_stop_one "$dir" "${3:-}" "${4:-fast}" ;;
    start-one) cmd_start_one "$dir" "${3:-}" ;;
    *) usage ;;
    esac
}

main "$@"
