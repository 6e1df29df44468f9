#!/usr/bin/env bash
# tools/bench/run.sh: throughput / latency / proxy-CPU benchmark of pgdual against direct
# PostgreSQL, pgbouncer 1.18 (session pool mode) and Pgpool-II 4.3 (native replication), and of
# pgdual's read dial against itself as a relay, and of pinned against verbatim dual-writes.
#
#   tools/bench/run.sh                    relay, dual-write, read-dial and pinning rounds (all
#                                         phases)
#   tools/bench/run.sh --relay-only       relay phase only: ROUNDS (default 3) interleaved rounds
#                                         of DURATION (default 10) s, 5 workloads x 3 targets
#   tools/bench/run.sh --dual-write-only  dual-write phase only: DW_ROUNDS (default 3) rounds of
#                                         DW_DURATION (default 10) s, TPC-B x 4 targets x DW_MODES
#   tools/bench/run.sh --reads-only       read-dial phase only: RD_ROUNDS (default 3) rounds of
#                                         RD_DURATION (default 10) s, select-only x 3 dial settings
#   tools/bench/run.sh --pin-only         pinning phase only: PIN_ROUNDS (default 3) rounds of
#                                         PIN_DURATION (default 10) s, TPC-B through pgdual lockstep
#                                         x PIN_MODES x pin_writes on/off (tools/bench/pin.sh)
#                                         (the --*-only flags combine: the phases named run)
#   tools/bench/run.sh --quick [...]      smoke test: 1 round of 3 s (combines with the above)
#   tools/bench/run.sh --profile          no table: perf-profile pgdual under select-only
#                                         -M prepared -c 16 for DURATION s -> profile-latest.txt
#
# Environment: ROUNDS, DURATION, SCALE (pgbench -i -s, default 10), DW_ROUNDS, DW_DURATION,
# DW_SCALE (default SCALE), DW_MODES (pgbench -M values, default "prepared simple"), RD_ROUNDS,
# RD_DURATION, RD_SCALE (default SCALE), PIN_ROUNDS, PIN_DURATION, PIN_SCALE (default SCALE),
# PIN_MODES (default "simple prepared"), PGDUAL_BIN (default build/pgdual), PGBOUNCER_BIN,
# PGPOOL_BIN, PGBENCH_BIN, WAIT_MAX_S (max wait for a quiet machine, default 1200).
#
# One run starts its own two clusters (tests/harness/pgcluster.sh) under a temp dir and waits
# until no `ctest` or `cmake --build` process shares the cores.
# Relay phase: pgbench -i on old, pgbouncer and pgdual (mirror = off) in front of old; for each
# round, target and workload one pgbench -T DURATION.
# Dual-write phase: TPC-B (pgbench -c 8 -j 2) against direct old (database bench_direct, old
# only), pgdual mirror_order = lockstep and = parallel (commit_wait = both) and pgpool native
# replication, the three over the same database bench_dw on old and new, initialised once by
# pgbench -i through pgdual-lockstep; only dual-writing targets touch bench_dw, so both sides
# stay identical (checked before each round and at the end). Target order rotates per round.
# Per run it records tps, average latency and the proxy's CPU seconds (utime+stime from
# /proc/PID/stat; for pgpool summed over its processes).
# Read-dial phase: database bench_rd on old and new, filled by pgbench -i through one pgdual
# (pgdual-reads, mirror on); per round, select-only -M prepared -c 16 through it with the dials
# (read_new_percent, compare_percent) = (0, 0) (the relay figure), (50, 0) and (50, 100), set
# with the admin console before each run (order rotates per round). Records tps, CPU, and the
# growth of reads_served_old/new and shadow_compares_total; reports the ratios to the relay
# figure and pgdual's CPU seconds per 10,000 compared reads.
# Pinning phase: see tools/bench/pin.sh.
# Prints the tables and writes them as markdown to tools/bench/results-latest.md.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$PWD
HERE=$REPO/tools/bench
COMMAND_LINE="tools/bench/run.sh${*:+ $*}"

usage() {
    echo "usage: tools/bench/run.sh [--quick] [--relay-only] [--dual-write-only] [--reads-only] [--pin-only] | --profile" >&2
    exit 2
}

MODE=full
ONLY=""
for arg in "$@"; do
    case "$arg" in
    --quick)
        [[ $MODE == profile ]] && usage
        MODE=quick
        ;;
    --profile)
        [[ $MODE == quick ]] && usage
        MODE=profile
        ;;
    --relay-only) ONLY+=" relay" ;;
    --dual-write-only) ONLY+=" dual" ;;
    --reads-only) ONLY+=" reads" ;;
    --pin-only) ONLY+=" pin" ;;
    -h | --help)
        sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) usage ;;
    esac
done
# No --*-only flag: every phase; otherwise just the phases named.
RUN_RELAY=1
RUN_DUAL=1
RUN_READS=1
RUN_PIN=1
if [[ -n $ONLY ]]; then
    [[ $ONLY == *relay* ]] || RUN_RELAY=0
    [[ $ONLY == *dual* ]] || RUN_DUAL=0
    [[ $ONLY == *reads* ]] || RUN_READS=0
    [[ $ONLY == *pin* ]] || RUN_PIN=0
fi
if [[ $MODE == profile ]]; then
    ((RUN_RELAY)) || usage # the profile runs on the relay pgdual
    RUN_DUAL=0
    RUN_READS=0
    RUN_PIN=0
fi

if [[ $MODE == quick ]]; then
    ROUNDS=1
    DURATION=3
    DW_ROUNDS=1
    DW_DURATION=3
    RD_ROUNDS=1
    RD_DURATION=3
    PIN_ROUNDS=1
    PIN_DURATION=3
else
    ROUNDS=${ROUNDS:-3}
    DURATION=${DURATION:-10}
    DW_ROUNDS=${DW_ROUNDS:-3}
    DW_DURATION=${DW_DURATION:-10}
    RD_ROUNDS=${RD_ROUNDS:-3}
    RD_DURATION=${RD_DURATION:-10}
    PIN_ROUNDS=${PIN_ROUNDS:-3}
    PIN_DURATION=${PIN_DURATION:-10}
fi
SCALE=${SCALE:-10}
DW_SCALE=${DW_SCALE:-$SCALE}
DW_MODES=${DW_MODES:-prepared simple}
DW_DB=bench_dw         # on old and new: written only through dual-writing targets
DW_DIRECT_DB=bench_direct # on old only: the direct baseline of the dual-write phase
RD_SCALE=${RD_SCALE:-$SCALE}
RD_DB=bench_rd # on old and new, filled through pgdual-reads; read-only afterwards
PIN_SCALE=${PIN_SCALE:-$SCALE}
PIN_MODES=${PIN_MODES:-simple prepared}
WAIT_MAX_S=${WAIT_MAX_S:-1200}
PG_BIN_DEFAULT=/usr/lib/postgresql/15/bin
PGDUAL_BIN=${PGDUAL_BIN:-$REPO/build/pgdual}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
PGPOOL_BIN=${PGPOOL_BIN:-$(command -v pgpool || echo /usr/sbin/pgpool)}
if [[ -z "${PGBENCH_BIN:-}" ]]; then
    if [[ -x $PG_BIN_DEFAULT/pgbench ]]; then
        PGBENCH_BIN=$PG_BIN_DEFAULT/pgbench
    else
        PGBENCH_BIN=$(command -v pgbench || true)
    fi
fi
CLK_TCK=$(getconf CLK_TCK)

# Workloads: name | pgbench arguments | statements per transaction.
# The built-in TPC-B script sends 7 statements per transaction (BEGIN, 3 UPDATE, SELECT,
# INSERT, END); select-only sends 1.
WORKLOADS=(
    "select-simple-c1|-S -M simple -c 1 -j 1|1"
    "select-prepared-c1|-S -M prepared -c 1 -j 1|1"
    "select-simple-c16|-S -M simple -c 16 -j 2|1"
    "select-prepared-c16|-S -M prepared -c 16 -j 2|1"
    "tpcb-prepared-c8|-M prepared -c 8 -j 2|7"
)
# Relay targets, in the order they run inside a round. `pgdual` is the relay-only proxy
# (mirror = off): TPC-B through it writes to old only.
TARGETS=(direct pgbouncer pgdual)
# Dual-write targets (TPC-B, pgbench -c 8 -j 2, one workload per DW_MODES entry). `direct` is
# old alone (database bench_direct); the others write to old and new (database bench_dw).
DW_TARGETS=(direct pgdual-lockstep pgdual-parallel pgpool)
DW_CLIENTS="-c 8 -j 2"
# Read-dial settings: name | read_new_percent | compare_percent. The first is the relay figure
# the others are compared with. All run select-only -M prepared -c 16 -j 2 through pgdual-reads.
RD_CONFIGS=(
    "dial0-cmp0|0|0"
    "dial50-cmp0|50|0"
    "dial50-cmp100|50|100"
)
RD_WORKLOAD="select-prepared-c16"
RD_ARGS="-S -M prepared -c 16 -j 2"

log() { echo "bench: $*" >&2; }
die() {
    log "$*"
    exit 1
}

TMP=""
PGDUAL_PID=""
PGBOUNCER_RUNUSER_PID=""
PGBOUNCER_PID=""
PGDUAL_LOCKSTEP_PID=""
PGDUAL_PARALLEL_PID=""
PGDUAL_READS_PID=""
PGDUAL_PIN_PID=""
PGPOOL_RUNUSER_PID=""
PGPOOL_PID=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "$PGDUAL_PID" "$PGDUAL_LOCKSTEP_PID" "$PGDUAL_PARALLEL_PID" "$PGDUAL_READS_PID" \
        "$PGDUAL_PIN_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            stop_pid "$pid"
        fi
    done
    # pgpool: SIGINT is its fast shutdown (SIGTERM would wait for clients).
    if [[ -n "$PGPOOL_PID" ]] && kill -0 "$PGPOOL_PID" 2>/dev/null; then
        stop_pid "$PGPOOL_PID" INT
    fi
    if [[ -n "$PGPOOL_RUNUSER_PID" ]]; then
        wait "$PGPOOL_RUNUSER_PID" 2>/dev/null || true
    fi
    if [[ -n "$PGBOUNCER_PID" ]] && kill -0 "$PGBOUNCER_PID" 2>/dev/null; then
        stop_pid "$PGBOUNCER_PID"
    fi
    if [[ -n "$PGBOUNCER_RUNUSER_PID" ]]; then
        wait "$PGBOUNCER_RUNUSER_PID" 2>/dev/null || true
    fi
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        tests/harness/pgcluster.sh stop "$TMP/pg" >/dev/null 2>&1 || true
        rm -rf "$TMP"
    fi
    exit "$rc"
}

# SIGTERM (or the given signal), wait up to 10 s, then SIGKILL.
stop_pid() {
    local pid=$1 sig=${2:-TERM}
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

port_in_use() {
    local port=$1
    [[ -n "$(ss -Htan "( sport = :$port )" 2>/dev/null)" ]] && return 0
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    return 1
}

pick_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        port_in_use "$port" || {
            echo "$port"
            return 0
        }
    done
    die "no free loopback port found"
}

wait_accepting() {
    local port=$1 pid=$2
    for _ in $(seq 200); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# Waits (poll every 10 s, at most WAIT_MAX_S) until no test suite or build shares the cores.
wait_quiet() {
    local waited=0 busy
    while :; do
        busy=$(
            {
                pgrep -a -x ctest || true
                pgrep -a -f '(^|[/ ])cmake --build' || true
            } | head -n 3
        )
        [[ -z "$busy" ]] && return 0
        if ((waited >= WAIT_MAX_S)); then
            log "still busy after ${WAIT_MAX_S}s, measuring anyway: $busy"
            QUIET_NOTE="machine was NOT quiet (ctest/cmake --build running after ${WAIT_MAX_S}s wait)"
            return 0
        fi
        ((waited == 0)) && log "waiting for ctest / cmake --build to finish: $(echo "$busy" | head -n1)"
        sleep 10
        waited=$((waited + 10))
    done
}

# md_headline_notes HEADLINE PROBLEMS: the markdown tail of a phase's section.
md_headline_notes() {
    echo "Headline figures:"
    echo
    echo "$1"
    [[ -n "$2" ]] || return 0
    echo
    echo "Notes:"
    echo
    echo '```'
    echo "$2"
    echo '```'
}

# print_phase TABLE COLUMNS HEADLINE PROBLEMS: a phase's table (tab-separated, columns named),
# its headline figures and any problems, on stdout.
print_phase() {
    echo
    column -t -s$'\t' -N "$2" "$1" 2>/dev/null || cat "$1"
    echo
    echo "$3"
    [[ -z "$4" ]] || echo "$4"
}

# Process CPU time (utime+stime, all threads) in clock ticks. Fields 14 and 15 of
# /proc/PID/stat; the text after the last ')' starts at field 3.
cpu_ticks() {
    local stat rest
    stat=$(<"/proc/$1/stat")
    rest=${stat##*) }
    local -a f
    read -r -a f <<<"$rest"
    echo $((f[11] + f[12]))
}

# CPU of a multi-process server in clock ticks: the parent's own and reaped children's time
# (fields 14-17), plus the live children's utime+stime. A child that exits between the two
# reads is counted by neither, one that exits and is reaped moves into the parent's cutime.
tree_cpu_ticks() {
    local parent=$1 stat rest total child
    local -a f
    stat=$(<"/proc/$parent/stat")
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    total=$((f[11] + f[12] + f[13] + f[14]))
    for child in $(pgrep -P "$parent" || true); do
        stat=$(cat "/proc/$child/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# CPU ticks of one cluster (postmaster, its reaped and live children): OLD or NEW.
server_cpu_ticks() {
    local data
    data=$([[ $1 == OLD ]] && echo "$OLD_DATA" || echo "$NEW_DATA")
    tree_cpu_ticks "$(head -n 1 "$data/postmaster.pid")"
}

# Proxy pid of a target, or empty for targets with no proxy.
target_pid() {
    case "$1" in
    direct) echo "" ;;
    pgbouncer) echo "$PGBOUNCER_PID" ;;
    pgdual) echo "$PGDUAL_PID" ;;
    pgdual-lockstep) echo "$PGDUAL_LOCKSTEP_PID" ;;
    pgdual-parallel) echo "$PGDUAL_PARALLEL_PID" ;;
    pgdual-reads) echo "$PGDUAL_READS_PID" ;;
    pgdual-pin) echo "$PGDUAL_PIN_PID" ;;
    pgpool) echo "$PGPOOL_PID" ;;
    *) die "unknown target $1" ;;
    esac
}

# Proxy CPU ticks of a target (pgpool: its whole process tree).
target_cpu_ticks() {
    local target=$1 pid=$2
    if [[ $target == pgpool ]]; then
        tree_cpu_ticks "$pid"
    else
        cpu_ticks "$pid"
    fi
}

target_port() {
    case "$1" in
    direct) echo "$OLD_PORT" ;;
    pgbouncer) echo "$PGBOUNCER_PORT" ;;
    pgdual) echo "$PGDUAL_PORT" ;;
    pgdual-lockstep) echo "$PGDUAL_LOCKSTEP_PORT" ;;
    pgdual-parallel) echo "$PGDUAL_PARALLEL_PORT" ;;
    pgdual-reads) echo "$PGDUAL_READS_PORT" ;;
    pgdual-pin) echo "$PGDUAL_PIN_PORT" ;;
    pgpool) echo "$PGPOOL_PORT" ;;
    *) die "unknown target $1" ;;
    esac
}

psql_old() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$OLD_PORT" -U postgres -d postgres "$@"
}

# psql_at PORT DB ARGS...: psql straight to one cluster.
psql_at() {
    local port=$1 db=$2
    shift 2
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

start_clusters() {
    tests/harness/pgcluster.sh start "$TMP/pg" >&2
    # shellcheck disable=SC1091
    source "$TMP/pg/cluster.env"
    PG_BIN=${PG_BIN:-$PG_BIN_DEFAULT}
}

init_relay_data() {
    log "pgbench -i -s $SCALE on old (127.0.0.1:$OLD_PORT)"
    "$PGBENCH_BIN" -i -q -s "$SCALE" -h 127.0.0.1 -p "$OLD_PORT" -U postgres postgres \
        >"$TMP/pgbench-init.log" 2>&1 || {
        cat "$TMP/pgbench-init.log" >&2
        die "pgbench -i failed"
    }
    psql_old -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
}

start_pgbouncer() {
    local dir=$TMP/pgbouncer try
    mkdir -p "$dir"
    printf '"postgres" ""\n' >"$dir/userlist.txt"
    chmod 0755 "$dir"
    for try in 1 2 3 4 5; do
        PGBOUNCER_PORT=$(pick_port)
        cat >"$dir/pgbouncer.ini" <<EOF
[databases]
postgres = host=127.0.0.1 port=$OLD_PORT dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = session
default_pool_size = 20
max_client_conn = 100
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
        chmod 0644 "$dir/pgbouncer.ini" "$dir/userlist.txt"
        rm -f "$dir/pgbouncer.pid"
        if [[ $(id -u) -eq 0 ]]; then
            chown -R postgres:postgres "$dir"
            (cd / && exec runuser -u postgres -- "$PGBOUNCER_BIN" "$dir/pgbouncer.ini") \
                >>"$dir/stderr.log" 2>&1 </dev/null &
        else
            "$PGBOUNCER_BIN" "$dir/pgbouncer.ini" >>"$dir/stderr.log" 2>&1 </dev/null &
        fi
        PGBOUNCER_RUNUSER_PID=$!
        for _ in $(seq 100); do
            [[ -s "$dir/pgbouncer.pid" ]] && break
            kill -0 "$PGBOUNCER_RUNUSER_PID" 2>/dev/null || break
            sleep 0.05
        done
        PGBOUNCER_PID=$(cat "$dir/pgbouncer.pid" 2>/dev/null || true)
        if [[ -n "$PGBOUNCER_PID" ]] && wait_accepting "$PGBOUNCER_PORT" "$PGBOUNCER_PID"; then
            log "pgbouncer (pid $PGBOUNCER_PID) on 127.0.0.1:$PGBOUNCER_PORT"
            return 0
        fi
        log "pgbouncer start on $PGBOUNCER_PORT failed (try $try)"
        [[ -n "$PGBOUNCER_PID" ]] && stop_pid "$PGBOUNCER_PID"
        wait "$PGBOUNCER_RUNUSER_PID" 2>/dev/null || true
        PGBOUNCER_PID=""
        PGBOUNCER_RUNUSER_PID=""
    done
    tail -n 20 "$dir/pgbouncer.log" "$dir/stderr.log" >&2 || true
    die "pgbouncer did not start"
}

# launch_pgdual NAME CUTOVER_LINES: starts one pgdual with its config in $TMP/NAME (mirror_order
# and commit_wait as given, or lockstep / both); sets LAUNCH_PORT and LAUNCH_PID.
launch_pgdual() {
    local name=$1 cutover=$2 dir=$TMP/$1 try
    mkdir -p "$dir"
    for try in 1 2 3 4 5; do
        LAUNCH_PORT=$(pick_port)
        # log_level = warning: the "listening on" line is not printed, so readiness is
        # detected with pg_isready on the configured port.
        cat >"$dir/pgdual.ini" <<EOF
; tools/bench/run.sh ($name)
[pgdual]
listen_addr = 127.0.0.1
listen_port = $LAUNCH_PORT
workers = 2
max_client_conn = 200
log_level = warning
auth_type = trust
admin_users = admin
; a loopback-only benchmark: the console without a password (README "Admin console security")
admin_auth_trust = on
state_file = pgdual.state
journal_dir = journal
divergence_log = divergences.jsonl
metrics_port = 0
[backends]
old = host=127.0.0.1 port=$OLD_PORT
new = host=127.0.0.1 port=$NEW_PORT
[cutover]
primary = old
read_new_percent = 0
compare_percent = 100
on_read_divergence = log
$cutover
EOF
        "$PGDUAL_BIN" -c "$dir/pgdual.ini" 2>>"$dir/pgdual.log" </dev/null &
        LAUNCH_PID=$!
        if wait_accepting "$LAUNCH_PORT" "$LAUNCH_PID"; then
            log "$name (pid $LAUNCH_PID) on 127.0.0.1:$LAUNCH_PORT"
            return 0
        fi
        log "$name start on $LAUNCH_PORT failed (try $try)"
        stop_pid "$LAUNCH_PID"
        LAUNCH_PID=""
    done
    tail -n 20 "$dir/pgdual.log" >&2 || true
    die "$name did not start"
}

# Does this pgdual build have the [cutover] mirror dial?
pgdual_has_mirror_dial() {
    local reference
    reference=$("$PGDUAL_BIN" --config-reference 2>/dev/null || true)
    grep -Eq '^[|] [[]cutover[]] [|] .mirror. [|]' <<<"$reference"
}

start_pgdual() {
    # The `pgdual` target is the primary-only proxy (mirror = off: writes go to old only; new has
    # no pgbench tables in database postgres, so mirrored TPC-B writes would fail there and
    # flood divergences.jsonl). Dual-write is measured by pgdual-lockstep / pgdual-parallel.
    local mirror_line=""
    pgdual_has_mirror_dial && mirror_line="mirror = off"
    PGDUAL_MIRROR_NOTE=${mirror_line:-"no mirror dial in this build"}
    launch_pgdual pgdual "mirror_order = lockstep
commit_wait = both
$mirror_line"
    PGDUAL_PORT=$LAUNCH_PORT
    PGDUAL_PID=$LAUNCH_PID
}

start_pgpool() {
    local dir=$TMP/pgpool try pcp_port
    mkdir -p "$dir"
    : >"$dir/pcp.conf"
    chmod 0755 "$dir"
    for try in 1 2 3 4 5; do
        PGPOOL_PORT=$(pick_port)
        pcp_port=$(pick_port)
        # Native replication: every write to backend0 (old) and then backend1 (new); reads to
        # old only (replicate_select = off, load_balance_mode = off). No failover or health
        # checks: a node must never be detached during a run (checked per round). Pooling: one
        # cached backend pair per child, 12 children for pgbench's 8 clients and our psql.
        cat >"$dir/pgpool.conf" <<EOF
backend_clustering_mode = 'native_replication'
listen_addresses = '127.0.0.1'
port = $PGPOOL_PORT
unix_socket_directories = '$dir'
pcp_listen_addresses = ''
pcp_port = $pcp_port
pcp_socket_dir = '$dir'
wd_ipc_socket_dir = '$dir'
backend_hostname0 = '127.0.0.1'
backend_port0 = $OLD_PORT
backend_weight0 = 1
backend_flag0 = 'DISALLOW_TO_FAILOVER'
backend_hostname1 = '127.0.0.1'
backend_port1 = $NEW_PORT
backend_weight1 = 1
backend_flag1 = 'DISALLOW_TO_FAILOVER'
enable_pool_hba = off
pool_passwd = ''
num_init_children = 12
max_pool = 1
connection_cache = on
child_life_time = 0
child_max_connections = 0
connection_life_time = 0
replicate_select = off
load_balance_mode = off
insert_lock = off
replication_stop_on_mismatch = off
failover_on_backend_error = off
health_check_period = 0
sr_check_period = 0
memory_cache_enabled = off
use_watchdog = off
log_destination = 'stderr'
log_min_messages = warning
pid_file_name = '$dir/pgpool.pid'
logdir = '$dir'
EOF
        rm -f "$dir/pgpool.pid"
        if [[ $(id -u) -eq 0 ]]; then
            chown -R postgres:postgres "$dir"
            (cd / && exec runuser -u postgres -- "$PGPOOL_BIN" -n -f "$dir/pgpool.conf" \
                -F "$dir/pcp.conf") >>"$dir/pgpool.log" 2>&1 </dev/null &
        else
            "$PGPOOL_BIN" -n -f "$dir/pgpool.conf" -F "$dir/pcp.conf" \
                >>"$dir/pgpool.log" 2>&1 </dev/null &
        fi
        PGPOOL_RUNUSER_PID=$!
        for _ in $(seq 100); do
            [[ -s "$dir/pgpool.pid" ]] && break
            kill -0 "$PGPOOL_RUNUSER_PID" 2>/dev/null || break
            sleep 0.05
        done
        PGPOOL_PID=$(tr -dc 0-9 <"$dir/pgpool.pid" 2>/dev/null || true)
        if [[ -n "$PGPOOL_PID" ]] && wait_accepting "$PGPOOL_PORT" "$PGPOOL_PID"; then
            log "pgpool (pid $PGPOOL_PID) on 127.0.0.1:$PGPOOL_PORT"
            return 0
        fi
        log "pgpool start on $PGPOOL_PORT failed (try $try)"
        [[ -n "$PGPOOL_PID" ]] && stop_pid "$PGPOOL_PID" INT
        wait "$PGPOOL_RUNUSER_PID" 2>/dev/null || true
        PGPOOL_PID=""
        PGPOOL_RUNUSER_PID=""
    done
    tail -n 20 "$dir/pgpool.log" >&2 || true
    die "pgpool did not start"
}

# "up up" when pgpool has both backends attached.
pgpool_node_status() {
    psql_at "$PGPOOL_PORT" "$DW_DB" -At -F' ' -c 'SHOW pool_nodes' 2>/dev/null |
        awk '{ printf "%s%s", (NR > 1 ? " " : ""), $4 }'
}

# Table checksums of one side of bench_dw (or bench_direct): accounts, tellers, branches.
dw_sums() {
    local port=$1 db=$2 what=${3:-all}
    local q="SELECT (SELECT sum(bbalance) FROM pgbench_branches) || '/' ||
                    (SELECT sum(tbalance) FROM pgbench_tellers)"
    if [[ $what == all ]]; then
        q="$q || '/' || (SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts)"
    fi
    psql_at "$port" "$db" -At -c "$q"
}

# Database bench_dw on old and new, bench_direct on old; dual-writing targets in front of both.
start_dual_write_targets() {
    local port
    for port in "$OLD_PORT" "$NEW_PORT"; do
        psql_at "$port" postgres -c "CREATE DATABASE $DW_DB"
    done
    psql_at "$OLD_PORT" postgres -c "CREATE DATABASE $DW_DIRECT_DB"
    local mirror_line=""
    pgdual_has_mirror_dial && mirror_line="mirror = on"
    launch_pgdual pgdual-lockstep "mirror_order = lockstep
commit_wait = both
$mirror_line"
    PGDUAL_LOCKSTEP_PORT=$LAUNCH_PORT
    PGDUAL_LOCKSTEP_PID=$LAUNCH_PID
    launch_pgdual pgdual-parallel "mirror_order = parallel
commit_wait = both
$mirror_line"
    PGDUAL_PARALLEL_PORT=$LAUNCH_PORT
    PGDUAL_PARALLEL_PID=$LAUNCH_PID
    start_pgpool

    # pgbench -i through the dual-writing pgdual creates and fills bench_dw on both sides.
    log "pgbench -i -s $DW_SCALE through pgdual-lockstep (bench_dw on old and new)," \
        "and directly on old (bench_direct)"
    "$PGBENCH_BIN" -i -q -s "$DW_SCALE" -h 127.0.0.1 -p "$PGDUAL_LOCKSTEP_PORT" -U postgres \
        "$DW_DB" >"$TMP/pgbench-init-dw.log" 2>&1 || {
        cat "$TMP/pgbench-init-dw.log" >&2
        die "pgbench -i through pgdual-lockstep failed"
    }
    "$PGBENCH_BIN" -i -q -s "$DW_SCALE" -h 127.0.0.1 -p "$OLD_PORT" -U postgres \
        "$DW_DIRECT_DB" >"$TMP/pgbench-init-direct.log" 2>&1 || {
        cat "$TMP/pgbench-init-direct.log" >&2
        die "pgbench -i on old failed"
    }
    psql_at "$OLD_PORT" "$DW_DIRECT_DB" -c 'VACUUM ANALYZE'
    for port in "$OLD_PORT" "$NEW_PORT"; do
        psql_at "$port" "$DW_DB" -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
    done
    DW_SUMS_INIT_OLD=$(dw_sums "$OLD_PORT" "$DW_DB")
    DW_SUMS_INIT_NEW=$(dw_sums "$NEW_PORT" "$DW_DB")
    [[ $DW_SUMS_INIT_OLD == "$DW_SUMS_INIT_NEW" ]] ||
        die "bench_dw differs after pgbench -i: old $DW_SUMS_INIT_OLD, new $DW_SUMS_INIT_NEW"
    [[ $(pgpool_node_status) == "up up" ]] || die "pgpool does not have both backends up"
}

# pgbench_figures OUT RC WHAT: sets the caller's tps, lat, txns, failed and status from pgbench's
# output OUT and exit status RC; a failed run logs WHAT and the output's tail.
pgbench_figures() {
    local out=$1 rc=$2
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | head -n1)
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | head -n1)
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n1)
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n1)
    status=ok
    if [[ $rc -ne 0 || -z "$tps" || -z "$txns" || ${failed:-0} -ne 0 ]]; then
        status="error(rc=$rc,failed=${failed:-?})"
        log "$3: $status; output tail:"
        tail -n 5 "$out" >&2
    fi
}

# Runs one pgbench; appends a line to $TMP/results.tsv:
# round target workload tps latency_ms cpu_ticks queries status
run_one() {
    local round=$1 target=$2 spec=$3
    local name args per_txn port pid out before=0 after=0 ticks="" rc=0
    IFS='|' read -r name args per_txn <<<"$spec"
    port=$(target_port "$target")
    pid=$(target_pid "$target")
    out=$TMP/out/$round.$target.$name.log
    # pgbench runs with -n: the vacuum/truncate it would do itself is done here, directly on
    # old and outside the measured window, so every target starts from the same state.
    if [[ $per_txn -ne 1 ]]; then
        psql_old -c 'VACUUM pgbench_branches' -c 'VACUUM pgbench_tellers' \
            -c 'TRUNCATE pgbench_history'
    fi
    if [[ -n "$pid" ]]; then
        kill -0 "$pid" 2>/dev/null || die "$target (pid $pid) is gone"
        before=$(cpu_ticks "$pid")
    fi
    # shellcheck disable=SC2086 # $args is a list of pgbench options
    "$PGBENCH_BIN" -n $args -T "$DURATION" -h 127.0.0.1 -p "$port" -U postgres postgres \
        >"$out" 2>&1 || rc=$?
    if [[ -n "$pid" ]]; then
        if kill -0 "$pid" 2>/dev/null; then
            after=$(cpu_ticks "$pid")
            ticks=$((after - before))
        else
            log "$target (pid $pid) died during $name"
            rc=99
        fi
    fi
    local tps lat txns failed status
    pgbench_figures "$out" "$rc" "round $round $target $name"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$name" "${tps:-NA}" \
        "${lat:-NA}" "${ticks:-NA}" "$((${txns:-0} * per_txn))" "$status" >>"$TMP/results.tsv"
    log "round $round $(printf '%-9s %-20s' "$target" "$name") tps=${tps:-NA} lat=${lat:-NA}ms" \
        "cpu_ticks=${ticks:--} queries=$((${txns:-0} * per_txn)) $status"
}

# Runs one dual-write TPC-B pgbench; appends a line to $TMP/dw.tsv (columns as results.tsv,
# with transactions instead of statements).
run_dw_one() {
    local round=$1 target=$2 mode=$3
    local name=tpcb-$mode-c8 port pid db=$DW_DB out before=0 after=0 ticks="" rc=0 sides side
    port=$(target_port "$target")
    pid=$(target_pid "$target")
    out=$TMP/out/dw.$round.$target.$name.log
    sides="$OLD_PORT $NEW_PORT"
    if [[ $target == direct ]]; then
        db=$DW_DIRECT_DB
        sides=$OLD_PORT
    fi
    # Same start for every target, outside the measured window, straight to each cluster.
    for side in $sides; do
        psql_at "$side" "$db" -c 'VACUUM pgbench_branches' -c 'VACUUM pgbench_tellers' \
            -c 'TRUNCATE pgbench_history'
    done
    if [[ $target != direct ]]; then
        local so sn
        so=$(dw_sums "$OLD_PORT" "$DW_DB" small)
        sn=$(dw_sums "$NEW_PORT" "$DW_DB" small)
        if [[ $so != "$sn" ]]; then
            log "round $round $target: bench_dw differs before the run: old $so, new $sn"
            echo "round $round before $target $name: bench_dw branches/tellers sums differ (old $so, new $sn)" \
                >>"$TMP/dw-problems.txt"
        fi
    fi
    if [[ -n "$pid" ]]; then
        kill -0 "$pid" 2>/dev/null || die "$target (pid $pid) is gone"
        before=$(target_cpu_ticks "$target" "$pid")
    fi
    local old_before new_before old_ticks new_ticks
    old_before=$(server_cpu_ticks OLD)
    new_before=$(server_cpu_ticks NEW)
    # shellcheck disable=SC2086 # $DW_CLIENTS is a list of pgbench options
    "$PGBENCH_BIN" -n -M "$mode" $DW_CLIENTS -T "$DW_DURATION" -h 127.0.0.1 -p "$port" \
        -U postgres "$db" >"$out" 2>&1 || rc=$?
    old_ticks=$(($(server_cpu_ticks OLD) - old_before))
    new_ticks=$(($(server_cpu_ticks NEW) - new_before))
    if [[ -n "$pid" ]]; then
        if kill -0 "$pid" 2>/dev/null; then
            after=$(target_cpu_ticks "$target" "$pid")
            ticks=$((after - before))
        else
            log "$target (pid $pid) died during $name"
            rc=99
        fi
    fi
    if [[ $target == pgpool && $rc -eq 0 && $(pgpool_node_status) != "up up" ]]; then
        log "pgpool detached a backend during round $round $name: $(pgpool_node_status)"
        rc=98
    fi
    local tps lat txns failed status
    pgbench_figures "$out" "$rc" "round $round $target $name"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$name" "${tps:-NA}" \
        "${lat:-NA}" "${ticks:-NA}" "${txns:-0}" "$status" "$old_ticks" "$new_ticks" >>"$TMP/dw.tsv"
    log "round $round $(printf '%-15s %-18s' "$target" "$name") tps=${tps:-NA} lat=${lat:-NA}ms" \
        "cpu_ticks=${ticks:--} txns=${txns:-0} $status"
}

# Dual-write phase: DW_ROUNDS rounds; the target order rotates by one each round so that no
# target always runs first (right after the VACUUM) or last.
run_dual_write() {
    local round i n=${#DW_TARGETS[@]} target mode
    log "dual-write: $DW_ROUNDS round(s) x $n targets x modes ($DW_MODES) x ${DW_DURATION}s"
    for ((round = 1; round <= DW_ROUNDS; round++)); do
        for ((i = 0; i < n; i++)); do
            target=${DW_TARGETS[$(((i + round - 1) % n))]}
            for mode in $DW_MODES; do
                run_dw_one "$round" "$target" "$mode"
            done
        done
    done
}

# awk function median(list): the median of the space-separated numbers in list ("NA" if none),
# shared by the awk programs below.
AWK_MEDIAN='
    function median(s,    n, a, i, j, t) {
        n = split(s, a, " ")
        if (n == 0) return "NA"
        for (i = 2; i <= n; i++) { t = a[i] + 0; j = i - 1
            while (j > 0 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- } a[j + 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
'

# summarize FILE PER: builds the table (tab separated) from FILE (results.tsv or dw.tsv):
# medians over rounds (ok rows only); proxy CPU seconds per PER units (statements or
# transactions, column 7).
# Columns: workload target tps latency ratio cpu_per_PER rounds_ok rounds_total
summarize() {
    awk -F'\t' -v tck="$CLK_TCK" -v per="$2" "$AWK_MEDIAN"'
    {
        k = $3 SUBSEP $2
        if (!($3 in wseen)) { wseen[$3] = 1; wl[++nw] = $3 }
        if (!($2 in tseen)) { tseen[$2] = 1; tl[++nt] = $2 }
        if (!(k in total)) { order[++nk] = k }
        total[k]++
        if ($8 != "ok") next
        ok[k]++
        tps[k] = tps[k] " " $4; lat[k] = lat[k] " " $5
        if ($6 != "NA" && $7 > 0) cpu[k] = cpu[k] " " ($6 / tck) / $7 * per
    }
    END {
        for (i = 1; i <= nk; i++) {
            k = order[i]; split(k, p, SUBSEP)
            mt[k] = median(tps[k]); ml[k] = median(lat[k])
            mc[k] = (k in cpu) ? median(cpu[k]) : "-"
        }
        for (w = 1; w <= nw; w++) for (t = 1; t <= nt; t++) {
            k = wl[w] SUBSEP tl[t]; if (!(k in total)) continue
            split(k, p, SUBSEP); d = p[1] SUBSEP "direct"
            r = (mt[k] != "NA" && (d in mt) && mt[d] != "NA" && mt[d] > 0) ? sprintf("%.2f", mt[k] / mt[d]) : "NA"
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", p[1], p[2],
                (mt[k] == "NA" ? "NA" : sprintf("%.0f", mt[k])),
                (ml[k] == "NA" ? "NA" : sprintf("%.3f", ml[k])), r,
                (mc[k] == "-" ? "-" : sprintf("%.3f", mc[k])), ok[k], total[k]
        }
    }' "$1"
}

versions() {
    echo "- pgdual: $("$PGDUAL_BIN" --version 2>&1 | head -n1) ($PGDUAL_BIN)"
    if ((RUN_RELAY)); then
        echo "- pgbouncer: $("$PGBOUNCER_BIN" --version 2>&1 | head -n1)"
    fi
    if ((RUN_DUAL)); then
        echo "- pgpool: $("$PGPOOL_BIN" --version 2>&1 | head -n1)"
    fi
    echo "- pgbench: $("$PGBENCH_BIN" --version 2>&1 | head -n1)"
    echo "- server: $(psql_old -At -c 'SELECT version()' | head -n1)"
    echo "- kernel: $(uname -sr); CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
}

# Relay phase: prints its table and headline; writes its markdown section to $TMP/md-relay.
report_relay() {
    local table=$TMP/table.tsv pgd_cpu pgd_tps pgb_tps ratio cpu_verdict tps_verdict
    summarize "$TMP/results.tsv" 10000 >"$table"
    pgd_cpu=$(awk -F'\t' '$1 == "select-prepared-c16" && $2 == "pgdual" { print $6 }' "$table")
    pgd_tps=$(awk -F'\t' '$1 == "select-prepared-c16" && $2 == "pgdual" { print $3 }' "$table")
    pgb_tps=$(awk -F'\t' '$1 == "select-prepared-c16" && $2 == "pgbouncer" { print $3 }' "$table")
    ratio=$(awk -v a="$pgd_tps" -v b="$pgb_tps" 'BEGIN { if (a != "NA" && b != "NA" && b > 0) printf "%.2f", a / b; else print "NA" }')
    cpu_verdict=$(awk -v c="$pgd_cpu" 'BEGIN { if (c == "" || c == "-" || c == "NA") print "n/a"; else print (c <= 0.10 ? "MET" : "NOT MET") }')
    tps_verdict=$(awk -v r="$ratio" 'BEGIN { if (r == "NA") print "n/a"; else print (r >= 1.3 ? "MET" : "NOT MET") }')

    local body
    body=$(
        echo "| workload | target | median tps | median latency ms | ratio to direct | proxy CPU s/10k queries |"
        echo "|---|---|---:|---:|---:|---:|"
        awk -F'\t' '{ n = ($7 < $8) ? sprintf(" (%d/%d rounds ok)", $7, $8) : ""
            printf "| %s | %s | %s%s | %s | %s | %s |\n", $1, $2, $3, n, $4, $5, $6 }' "$table"
    )
    local headline
    headline=$(
        echo "- pgdual proxy CPU per 10,000 select-only queries (-M prepared -c 16): ${pgd_cpu:-NA} s (target <= 0.10 s: $cpu_verdict)"
        echo "- pgdual / pgbouncer tps, select-only -M prepared -c 16: ${ratio}x ($pgd_tps / $pgb_tps; target >= 1.3x: $tps_verdict)"
    )
    local problems
    problems=$(
        grep -c . "$TMP/pgdual/pgdual.log" 2>/dev/null | sed 's/^/pgdual stderr lines (log_level = warning): /' || true
        grep -v '^\s*$' "$TMP/pgdual/pgdual.log" 2>/dev/null | sort | uniq -c | sort -rn | head -n 5 | sed 's/^/  /' || true
        awk -F'\t' '$8 != "ok" { printf "failed run: round %s %s %s %s\n", $1, $2, $3, $8 }' "$TMP/results.tsv"
    )

    print_phase "$table" workload,target,median_tps,median_lat_ms,ratio_direct,cpu_s_per_10k,ok,runs \
        "$headline" "$problems"

    {
        echo "## Relay (ROUNDS=$ROUNDS, DURATION=${DURATION}s, SCALE=$SCALE)"
        echo
        echo "- setup: two PG15 clusters (tests/harness/pgcluster.sh, fsync off), pgbench -i -s $SCALE on old;"
        echo "  every target in front of old over 127.0.0.1 TCP; pgbouncer pool_mode = session,"
        echo "  default_pool_size = 20; pgdual workers = 2, primary = old, ${PGDUAL_MIRROR_NOTE}"
        echo "  (TPC-B through pgdual writes to old only). pgbench -n -T $DURATION; rounds interleaved"
        echo "  (round -> target -> workload). Medians over rounds."
        echo "- proxy CPU: utime+stime of the proxy process (/proc/PID/stat) over the run, per 10,000"
        echo "  statements (transactions x 1 for -S, x 7 for TPC-B: BEGIN, 3 UPDATE, SELECT, INSERT, END)."
        echo
        echo "$body"
        echo
        md_headline_notes "$headline" "$problems"
    } >"$TMP/md-relay"
}

# admin_status PORT [KEYS_ERE]: "key=value ..." of a pgdual's SHOW STATUS (selected keys).
admin_status() {
    local keys=${2:-secondary_state|writes_mirrored|divergences_total|nondeterministic_writes_total|backend_failures_total}
    "$PG_BIN/psql" -X -At -F= -h 127.0.0.1 -p "$1" -U admin -d pgdual -c 'SHOW STATUS' 2>/dev/null |
        awk -F= -v re="^($keys)\$" '$1 ~ re { printf "%s%s=%s", (n++ ? " " : ""), $1, $2 }'
}

# admin_set PORT KEY VALUE: changes a [cutover] dial of a running pgdual (admin console).
admin_set() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U admin -d pgdual \
        -c "SET $2 = $3" >/dev/null
}

# pgdual_notes NAME [KEYS_ERE]: the report's notes on one pgdual target: selected SHOW STATUS keys (KEYS_ERE
# as admin_status), its divergence kinds and its most frequent stderr lines.
pgdual_notes() {
    local name=$1 port
    port=$(target_port "$name")
    echo "$name SHOW STATUS: $(admin_status "$port" "${2:-}")"
    grep -o '"kind":"[a-z_]*"' "$TMP/$name/divergences.jsonl" 2>/dev/null | sort | uniq -c |
        sed "s/^ */  $name divergences.jsonl: /" || true
    grep -v -e '^\s*$' -e 'listening on' "$TMP/$name/pgdual.log" 2>/dev/null | sort | uniq -c |
        sort -rn | head -n 5 |
        sed "s/^/  $name stderr: /" || true
}

# Value of column $3 (tps) or $6 (CPU) for workload/target from the dual-write table.
dw_cell() {
    awk -F'\t' -v w="$2" -v t="$3" -v c="$4" '$1 == w && $2 == t { print $c }' "$1"
}

ratio_of() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && a != "NA" && b != "NA" && b > 0) printf "%.2f", a / b; else print "NA" }'
}

# cpu_split: from dw.tsv, the median CPU milliseconds per transaction of the old server, the new
# server and the proxy per workload and target, and the tps the servers' CPU alone would allow on
# this host's cores with a proxy and a client that cost nothing (cores x 1000 / (old + new)).
# Columns: workload target old_ms new_ms proxy_ms servers_bound_tps
cpu_split() {
    awk -F'\t' -v tck="$CLK_TCK" -v cores="$(nproc)" "$AWK_MEDIAN"'
    $8 == "ok" && $7 > 0 && $9 != "" {
        k = $3 SUBSEP $2
        if (!(k in seen)) { seen[k] = 1; order[++n] = k }
        o[k] = o[k] " " ($9 / tck) * 1000 / $7; w[k] = w[k] " " ($10 / tck) * 1000 / $7
        if ($6 != "NA") x[k] = x[k] " " ($6 / tck) * 1000 / $7
    }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]; split(k, p, SUBSEP)
            mo = median(o[k]); mw = median(w[k]); mx = (k in x) ? sprintf("%.3f", median(x[k])) : "-"
            printf "%s\t%s\t%.3f\t%.3f\t%s\t%.0f\n", p[1], p[2], mo, mw, mx,
                (mo + mw > 0) ? cores * 1000 / (mo + mw) : 0
        }
    }' "$1"
}

# Dual-write phase: prints its table and headline; writes its markdown to $TMP/md-dw.
report_dual() {
    local table=$TMP/dw-table.tsv mode w
    summarize "$TMP/dw.tsv" 1000 >"$table"
    # Extra column: ratio to pgpool, inserted after the ratio to direct.
    awk -F'\t' -v OFS='\t' 'NR == FNR { if ($2 == "pgpool") p[$1] = $3; next }
        { r = ($3 != "NA" && ($1 in p) && p[$1] != "NA" && p[$1] > 0) ? sprintf("%.2f", $3 / p[$1]) : "NA"
          print $1, $2, $3, $4, $5, r, $6, $7, $8 }' "$table" "$table" >"$table.2"
    mv "$table.2" "$table"

    local headline=""
    for mode in $DW_MODES; do
        w=tpcb-$mode-c8
        local lock par pool direct lock_cpu par_cpu pool_cpu r verdict
        lock=$(dw_cell "$table" "$w" pgdual-lockstep 3)
        par=$(dw_cell "$table" "$w" pgdual-parallel 3)
        pool=$(dw_cell "$table" "$w" pgpool 3)
        direct=$(dw_cell "$table" "$w" direct 3)
        lock_cpu=$(dw_cell "$table" "$w" pgdual-lockstep 7)
        par_cpu=$(dw_cell "$table" "$w" pgdual-parallel 7)
        pool_cpu=$(dw_cell "$table" "$w" pgpool 7)
        r=$(ratio_of "$lock" "$pool")
        verdict=$(awk -v r="$r" 'BEGIN { if (r == "NA") print "n/a"; else print (r >= 2 ? "MET" : "NOT MET") }')
        headline+="- $w: pgdual-lockstep / pgpool tps ${r}x (${lock:-NA} / ${pool:-NA}; target >= 2x: $verdict);"
        headline+=" pgdual-parallel / pgpool $(ratio_of "$par" "$pool")x"$'\n'
        headline+="- $w: pgdual-lockstep / direct $(ratio_of "$lock" "$direct")x,"
        headline+=" pgdual-parallel / direct $(ratio_of "$par" "$direct")x (direct = old alone, ${direct:-NA} tps)"$'\n'
        headline+="- $w: pgdual CPU per 1,000 transactions: lockstep ${lock_cpu:-NA} s, parallel ${par_cpu:-NA} s"
        headline+=" (pgpool, all processes: ${pool_cpu:-NA} s)"$'\n'
    done
    headline+="- consistency after the run (bench_dw, branches/tellers/accounts count:sum): $DW_CHECK"

    local problems name
    problems=$(
        for name in pgdual-lockstep pgdual-parallel; do
            pgdual_notes "$name"
        done
        grep -E 'WARNING|ERROR|FATAL' "$TMP/pgpool/pgpool.log" 2>/dev/null | sed 's/^[-0-9: .]*//; s/pid [0-9]*/pid N/' |
            sort | uniq -c | sort -rn | head -n 5 | sed 's/^/  pgpool log: /' || true
        cat "$TMP/dw-problems.txt" 2>/dev/null || true
        awk -F'\t' '$8 != "ok" { printf "failed run: round %s %s %s %s\n", $1, $2, $3, $8 }' "$TMP/dw.tsv"
    )

    print_phase "$table" workload,target,median_tps,median_lat_ms,ratio_direct,ratio_pgpool,cpu_s_per_1k_txn,ok,runs \
        "$headline" "$problems"
    echo "CPU ms per transaction (old server, new server, proxy) and the servers-only bound:"
    cpu_split "$TMP/dw.tsv" | column -t -s $'\t'

    {
        echo "## Dual-write TPC-B (DW_ROUNDS=$DW_ROUNDS, DW_DURATION=${DW_DURATION}s, DW_SCALE=$DW_SCALE)"
        echo
        echo "- workload: built-in TPC-B, \`pgbench -n -M MODE $DW_CLIENTS -T $DW_DURATION\` for MODE in: $DW_MODES."
        echo "- targets: direct = old alone (database $DW_DIRECT_DB); pgdual-lockstep (mirror = on,"
        echo "  mirror_order = lockstep, commit_wait = both), pgdual-parallel (mirror_order = parallel,"
        echo "  commit_wait = both), both workers = 2; pgpool = Pgpool-II native_replication, backend0 = old,"
        echo "  backend1 = new, replicate_select = off, load_balance_mode = off, num_init_children = 12,"
        echo "  max_pool = 1, connection_cache = on, insert_lock = off. All over 127.0.0.1 TCP."
        echo "- data: $DW_DB on old and new made by \`pgbench -i -s $DW_SCALE\` through pgdual-lockstep"
        echo "  (initial sums equal: $DW_SUMS_INIT_OLD); only dual-writing targets write to it. Before each"
        echo "  run, straight to each cluster: VACUUM branches/tellers, TRUNCATE history. Target order"
        echo "  rotates by one per round. Medians over rounds."
        echo "- proxy CPU: utime+stime (/proc/PID/stat) over the run per 1,000 transactions; pgdual is"
        echo "  one process; pgpool is summed over its main process and children."
        echo
        echo "| workload | target | median tps | median latency ms | ratio to direct | ratio to pgpool | proxy CPU s/1k txns |"
        echo "|---|---|---:|---:|---:|---:|---:|"
        awk -F'\t' '{ n = ($8 < $9) ? sprintf(" (%d/%d rounds ok)", $8, $9) : ""
            printf "| %s | %s | %s%s | %s | %s | %s | %s |\n", $1, $2, $3, n, $4, $5, $6, $7 }' "$table"
        echo
        echo "Where a transaction's CPU goes (median ms per transaction: each cluster's postmaster and"
        echo "backends, the proxy; the bound is the tps the two servers' CPU alone allows on $(nproc) cores):"
        echo
        echo "| workload | target | old server ms | new server ms | proxy ms | servers-only bound tps |"
        echo "|---|---|---:|---:|---:|---:|"
        cpu_split "$TMP/dw.tsv" | awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }'
        echo
        md_headline_notes "$headline" "$problems"
    } >"$TMP/md-dw"
}

# ---------------------------------------------------------------------------------------------
# Read-dial phase

# Database bench_rd on old and new, filled through pgdual-reads (mirrored), which the read-dial
# runs then use; both sides must be equal, or shadow compares would count divergences.
start_read_target() {
    local port mirror_line=""
    for port in "$OLD_PORT" "$NEW_PORT"; do
        psql_at "$port" postgres -c "CREATE DATABASE $RD_DB"
    done
    pgdual_has_mirror_dial && mirror_line="mirror = on"
    launch_pgdual pgdual-reads "mirror_order = lockstep
commit_wait = both
$mirror_line"
    PGDUAL_READS_PORT=$LAUNCH_PORT
    PGDUAL_READS_PID=$LAUNCH_PID
    log "pgbench -i -s $RD_SCALE through pgdual-reads ($RD_DB on old and new)"
    "$PGBENCH_BIN" -i -q -s "$RD_SCALE" -h 127.0.0.1 -p "$PGDUAL_READS_PORT" -U postgres \
        "$RD_DB" >"$TMP/pgbench-init-rd.log" 2>&1 || {
        cat "$TMP/pgbench-init-rd.log" >&2
        die "pgbench -i through pgdual-reads failed"
    }
    for port in "$OLD_PORT" "$NEW_PORT"; do
        psql_at "$port" "$RD_DB" -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
    done
    RD_SUMS=$(dw_sums "$OLD_PORT" "$RD_DB")
    [[ $RD_SUMS == "$(dw_sums "$NEW_PORT" "$RD_DB")" ]] ||
        die "$RD_DB differs between old and new after pgbench -i"
}

# rd_counters PORT: "reads_served_old reads_served_new shadow_compares_total" of a pgdual.
rd_counters() {
    "$PG_BIN/psql" -X -At -F= -h 127.0.0.1 -p "$1" -U admin -d pgdual -c 'SHOW STATUS' 2>/dev/null |
        awk -F= '{ v[$1] = $2 }
            END { printf "%d %d %d\n", v["reads_served_old"], v["reads_served_new"], v["shadow_compares_total"] }'
}

# Runs one read-dial pgbench; appends a line to $TMP/rd.tsv: the columns of results.tsv, then
# shadow compares, reads served by old, reads served by new (growth over the run).
run_rd_one() {
    local round=$1 spec=$2 name dial cmp port=$PGDUAL_READS_PORT pid=$PGDUAL_READS_PID
    local out before ticks="" rc=0 old0 new0 cmp0 old1 new1 cmp1
    IFS='|' read -r name dial cmp <<<"$spec"
    out=$TMP/out/rd.$round.$name.log
    kill -0 "$pid" 2>/dev/null || die "pgdual-reads (pid $pid) is gone"
    { admin_set "$port" read_new_percent "$dial" && admin_set "$port" compare_percent "$cmp"; } ||
        die "pgdual-reads: SET read_new_percent = $dial, compare_percent = $cmp failed"
    sleep 0.5 # the workers get the new dials through their mailboxes
    read -r old0 new0 cmp0 < <(rd_counters "$port")
    before=$(cpu_ticks "$pid")
    # shellcheck disable=SC2086 # $RD_ARGS is a list of pgbench options
    "$PGBENCH_BIN" -n $RD_ARGS -T "$RD_DURATION" -h 127.0.0.1 -p "$port" -U postgres "$RD_DB" \
        >"$out" 2>&1 || rc=$?
    if kill -0 "$pid" 2>/dev/null; then
        ticks=$(($(cpu_ticks "$pid") - before))
    else
        log "pgdual-reads (pid $pid) died during $name"
        rc=99
    fi
    read -r old1 new1 cmp1 < <(rd_counters "$port")
    local tps lat txns failed status
    pgbench_figures "$out" "$rc" "round $round $name"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$RD_WORKLOAD" \
        "${tps:-NA}" "${lat:-NA}" "${ticks:-NA}" "${txns:-0}" "$status" "$((cmp1 - cmp0))" \
        "$((old1 - old0))" "$((new1 - new0))" >>"$TMP/rd.tsv"
    log "round $round $(printf '%-14s' "$name") tps=${tps:-NA} lat=${lat:-NA}ms cpu_ticks=${ticks:--}" \
        "queries=${txns:-0} compares=$((cmp1 - cmp0)) served old/new=$((old1 - old0))/$((new1 - new0)) $status"
}

# Read-dial phase: RD_ROUNDS rounds; the order of the dial settings rotates by one each round.
run_reads() {
    local round i n=${#RD_CONFIGS[@]}
    log "read dial: $RD_ROUNDS round(s) x $n dial settings x ${RD_DURATION}s ($RD_WORKLOAD)"
    for ((round = 1; round <= RD_ROUNDS; round++)); do
        for ((i = 0; i < n; i++)); do
            run_rd_one "$round" "${RD_CONFIGS[$(((i + round - 1) % n))]}"
        done
    done
}

# rd_verdict TABLE SETTING TARGET: "RATIOx (target >= TARGETx: MET|NOT MET)" for a setting of
# the read-dial table; n/a when no read was served by new (a build without the read dial).
rd_verdict() {
    awk -F'\t' -v n="$2" -v t="$3" '$1 == n { r = $4; share = $7; found = 1 }
        END {
            if (!found || r == "NA") { print "NA (target >= " t "x: n/a)"; exit }
            if (share !~ /^[1-9]/) { print r "x (target >= " t "x: n/a, no read was served by new: this build does not route reads)"; exit }
            print r "x (target >= " t "x: " (r >= t ? "MET" : "NOT MET") ")"
        }' "$1"
}

# Read-dial phase: prints its table and headline; writes its markdown to $TMP/md-reads.
report_reads() {
    local table=$TMP/rd-table.tsv relay
    # Medians as the other phases; CPU per 10,000 compared reads is the same summary over the
    # compares column (runs without compares get "-").
    summarize "$TMP/rd.tsv" 10000 >"$table"
    awk -F'\t' -v OFS='\t' '{ $7 = $9; print }' "$TMP/rd.tsv" >"$TMP/rd-cmp.tsv"
    summarize "$TMP/rd-cmp.tsv" 10000 >"$TMP/rd-cmp-table.tsv"
    relay=$(awk -F'\t' '$2 == "dial0-cmp0" { print $3 }' "$table")
    # Columns: setting, tps, latency, ratio to relay, CPU/10k reads, CPU/10k compared reads,
    # share of reads served by new (over all ok runs), rounds ok, rounds.
    awk -F'\t' -v OFS='\t' -v relay="$relay" '
        FILENAME == ARGV[1] { if ($8 == "ok") { o[$2] += $10; nw[$2] += $11 } next }
        FILENAME == ARGV[2] { c[$2] = $6; next }
        { r = ($3 != "NA" && relay != "" && relay != "NA" && relay > 0) ? sprintf("%.2f", $3 / relay) : "NA"
          sh = (o[$2] + nw[$2] > 0) ? sprintf("%.0f %%", 100 * nw[$2] / (o[$2] + nw[$2])) : "NA"
          print $2, $3, $4, r, $6, c[$2], sh, $7, $8 }' \
        "$TMP/rd.tsv" "$TMP/rd-cmp-table.tsv" "$table" >"$table.2"
    mv "$table.2" "$table"

    local cpu_cmp headline
    cpu_cmp=$(awk -F'\t' '$1 == "dial50-cmp100" { print $6 }' "$table")
    headline="- relay figure (dial 0, compare 0): ${relay:-NA} tps"$'\n'
    headline+="- dial 50, compare 0 / relay: $(rd_verdict "$table" dial50-cmp0 0.9)"$'\n'
    headline+="- dial 50, compare 100 / relay: $(rd_verdict "$table" dial50-cmp100 0.7)"$'\n'
    headline+="- pgdual CPU per 10,000 compared reads (dial 50, compare 100): ${cpu_cmp:-NA} s"

    local problems
    problems=$(
        pgdual_notes pgdual-reads 'secondary_state|reads_served_old|reads_served_new|fallbacks_total|shadow_compares_total|shadow_timeouts_total|divergences_total'
        awk -F'\t' '$8 != "ok" { printf "failed run: round %s %s %s\n", $1, $2, $8 }' "$TMP/rd.tsv"
    )

    print_phase "$table" setting,median_tps,median_lat_ms,ratio_relay,cpu_s_per_10k_reads,cpu_s_per_10k_compared,served_by_new,ok,runs \
        "$headline" "$problems"

    {
        echo "## Read dial (RD_ROUNDS=$RD_ROUNDS, RD_DURATION=${RD_DURATION}s, RD_SCALE=$RD_SCALE)"
        echo
        echo "- workload: \`pgbench -n $RD_ARGS -T $RD_DURATION\` through one pgdual (pgdual-reads,"
        echo "  workers = 2, primary = old, mirror on) over $RD_DB on old and new, made by"
        echo "  \`pgbench -i -s $RD_SCALE\` through it (sums equal on both sides: $RD_SUMS)."
        echo "- settings (read_new_percent, compare_percent), set with the admin console before each run:"
        echo "  dial0-cmp0 = (0, 0), the relay figure; dial50-cmp0 = (50, 0); dial50-cmp100 = (50, 100)."
        echo "  Order rotates by one per round. Medians over rounds."
        echo "- proxy CPU: utime+stime (/proc/PID/stat) over the run, per 10,000 reads and per 10,000"
        echo "  compared reads (growth of shadow_compares_total over the run); served by new ="
        echo "  reads_served_new / (reads_served_old + reads_served_new) over the runs."
        echo
        echo "| setting | median tps | median latency ms | ratio to relay | proxy CPU s/10k reads | proxy CPU s/10k compared reads | served by new | rounds ok |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %d/%d |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$table"
        echo
        md_headline_notes "$headline" "$problems"
    } >"$TMP/md-reads"
}

# Compares bench_dw on old and new after the dual-write phase; sets DW_CHECK.
check_dual_write() {
    local so sn
    so=$(dw_sums "$OLD_PORT" "$DW_DB")
    sn=$(dw_sums "$NEW_PORT" "$DW_DB")
    if [[ $so == "$sn" ]]; then
        DW_CHECK="equal on old and new ($so)"
    else
        DW_CHECK="DIFFERENT: old $so, new $sn"
    fi
    log "dual-write consistency: $DW_CHECK"
}

report() {
    local md=$HERE/results-latest.md
    if ((RUN_RELAY)); then
        report_relay
    fi
    if ((RUN_DUAL)); then
        report_dual
    fi
    if ((RUN_READS)); then
        report_reads
    fi
    if ((RUN_PIN)); then
        report_pin
    fi
    {
        echo "# pgdual benchmark: latest results"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "- command: \`$COMMAND_LINE\`; wall time: ${SECONDS}s (measuring: $((SECONDS - MEASURE_START))s)"
        echo "- nproc: $(nproc); load average before measuring: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
        [[ -n "${QUIET_NOTE:-}" ]] && echo "- WARNING: $QUIET_NOTE"
        versions
        if ((RUN_RELAY)); then
            echo
            cat "$TMP/md-relay"
        fi
        if ((RUN_DUAL)); then
            echo
            cat "$TMP/md-dw"
        fi
        if ((RUN_READS)); then
            echo
            cat "$TMP/md-reads"
        fi
        if ((RUN_PIN)); then
            echo
            cat "$TMP/md-pin"
        fi
    } >"$md"
    log "wrote $md"
}

profile() {
    command -v perf >/dev/null || die "perf not found"
    local out=$HERE/profile-latest.txt data=$TMP/perf.data
    log "perf record -g on pgdual (pid $PGDUAL_PID) under select-only -M prepared -c 16 for ${DURATION}s"
    perf record -q -g -F 999 -o "$data" -p "$PGDUAL_PID" -- sleep "$((DURATION + 1))" \
        >"$TMP/perf.log" 2>&1 &
    local perf_pid=$!
    sleep 0.5
    local before
    before=$(cpu_ticks "$PGDUAL_PID")
    "$PGBENCH_BIN" -n -S -M prepared -c 16 -j 2 -T "$DURATION" -h 127.0.0.1 -p "$PGDUAL_PORT" \
        -U postgres postgres >"$TMP/profile-pgbench.log" 2>&1 || true
    local ticks=$(($(cpu_ticks "$PGDUAL_PID") - before))
    wait "$perf_pid" || {
        cat "$TMP/perf.log" >&2
        die "perf record failed"
    }
    # Syscalls and context switches per query, pgdual vs pgbouncer, same load (5 s each).
    local target port pid txns sc cs syscall_lines=""
    for target in pgdual pgbouncer; do
        port=$(target_port "$target")
        pid=$(target_pid "$target")
        perf stat -x, -e raw_syscalls:sys_enter,context-switches,syscalls:sys_enter_sendto \
            -e syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait \
            -e syscalls:sys_enter_epoll_ctl -p "$pid" -o "$TMP/stat.$target" \
            -- sleep 5.5 &
        local stat_pid=$!
        sleep 0.2
        "$PGBENCH_BIN" -n -S -M prepared -c 16 -j 2 -T 5 -h 127.0.0.1 -p "$port" \
            -U postgres postgres >"$TMP/stat-pgbench.$target" 2>&1 || true
        wait "$stat_pid" || true
        txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
            "$TMP/stat-pgbench.$target")
        sc=$(awk -F, '$3 ~ /sys_enter/ { print $1 }' "$TMP/stat.$target")
        cs=$(awk -F, '$3 ~ /context-switches/ { print $1 }' "$TMP/stat.$target")
        syscall_lines+=$(awk -v t="$target" -v n="${txns:-0}" -v sc="${sc:-0}" -v cs="${cs:-0}" \
            'BEGIN { if (n > 0) printf "%-10s %8d queries  %.2f syscalls/query  %.2f context switches/query", t, n, sc / n, cs / n }')
        syscall_lines+=$(awk -F, -v n="${txns:-0}" '$3 ~ /syscalls:sys_enter_/ && n > 0 {
            sub(/.*sys_enter_/, "", $3); printf "  %s %.2f", $3, $1 / n }' "$TMP/stat.$target")
        syscall_lines+=$'\n'
    done
    {
        echo "# pgdual profile: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "# command: $COMMAND_LINE (DURATION=${DURATION}s); perf record -g -F 999 -p PGDUAL_PID"
        echo "# load: pgbench -n -S -M prepared -c 16 -j 2 through pgdual (workers = 2); nproc $(nproc)"
        echo "# $(grep -E '^(tps|latency average)' "$TMP/profile-pgbench.log" | tr '\n' ' ')"
        echo "# pgdual CPU over the run: $(awk -v t="$ticks" -v h="$CLK_TCK" 'BEGIN { printf "%.2f", t / h }') s"
        echo
        echo "## Syscalls per query (perf stat, 5 s of the same load per proxy)"
        echo -n "$syscall_lines"
        echo
        echo "## Top symbols, self time (perf report --no-children --sort dso,sym)"
        perf report -i "$data" --stdio --no-children --sort dso,sym -g none --percent-limit 0.3 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -n 40
        echo
        echo "## By DSO, self time"
        perf report -i "$data" --stdio --no-children --sort dso -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -n 15
        echo
        echo "## Top symbols, inclusive (children) time"
        perf report -i "$data" --stdio --children --sort sym -g none --percent-limit 2 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -n 40
    } >"$out"
    log "wrote $out"
    cat "$out"
}

main() {
    [[ -x "$PGBENCH_BIN" ]] || die "pgbench not found (set PGBENCH_BIN)"
    if ((RUN_RELAY)); then
        [[ -x "$PGBOUNCER_BIN" ]] || die "pgbouncer not found (set PGBOUNCER_BIN)"
    fi
    if ((RUN_DUAL)); then
        [[ -x "$PGPOOL_BIN" ]] || die "pgpool not found (set PGPOOL_BIN; tools/install-deps.sh installs pgpool2)"
    fi
    # A build may be producing the binary right now: wait for a quiet machine first.
    QUIET_NOTE=""
    wait_quiet
    [[ -x "$PGDUAL_BIN" ]] || die "$PGDUAL_BIN not found (build it: cmake --build build --target pgdual)"

    trap cleanup EXIT
    trap 'exit 130' INT TERM
    TMP=$(mktemp -d /tmp/pgdual-bench.XXXXXX)
    chmod 0755 "$TMP"
    mkdir -p "$TMP/out"
    : >"$TMP/results.tsv"
    : >"$TMP/dw.tsv"
    : >"$TMP/rd.tsv"
    : >"$TMP/pin.tsv"

    start_clusters
    if ((RUN_RELAY)); then
        init_relay_data
        start_pgbouncer
        start_pgdual
    fi
    if ((RUN_DUAL)); then
        start_dual_write_targets
    fi
    if ((RUN_READS)); then
        start_read_target
    fi
    if ((RUN_PIN)); then
        start_pin_target
    fi

    wait_quiet
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    MEASURE_START=$SECONDS
    if [[ $MODE == profile ]]; then
        profile
        return 0
    fi
    if ((RUN_RELAY)); then
        log "relay, mode $MODE: $ROUNDS round(s) x ${#TARGETS[@]} targets x ${#WORKLOADS[@]} workloads x ${DURATION}s"
        local round target spec
        for ((round = 1; round <= ROUNDS; round++)); do
            for target in "${TARGETS[@]}"; do
                for spec in "${WORKLOADS[@]}"; do
                    run_one "$round" "$target" "$spec"
                done
            done
        done
    fi
    if ((RUN_DUAL)); then
        run_dual_write
        check_dual_write
    fi
    if ((RUN_READS)); then
        run_reads
    fi
    if ((RUN_PIN)); then
        run_pin
    fi
    report
}

# shellcheck source=tools/bench/pin.sh
source "$HERE/pin.sh"

main
