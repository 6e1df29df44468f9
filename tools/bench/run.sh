#!/usr/bin/env bash
# tools/bench/run.sh: throughput / latency / proxy-CPU benchmark of pgdual against direct
# PostgreSQL and pgbouncer 1.18 (session pool mode), all in front of the same "old" cluster.
#
#   tools/bench/run.sh             ROUNDS (default 3) interleaved rounds of DURATION (default 10) s
#   tools/bench/run.sh --quick     smoke test: 1 round of 3 s
#   tools/bench/run.sh --profile   no table: perf-profile pgdual under select-only -M prepared -c 16
#                                  for DURATION s, top symbols -> tools/bench/profile-latest.txt
#
# Environment: ROUNDS, DURATION, SCALE (pgbench -i -s, default 10), PGDUAL_BIN (default
# build/pgdual), PGBOUNCER_BIN, PGBENCH_BIN, WAIT_MAX_S (max wait for a quiet machine, default 1200).
#
# One run starts its own two clusters (tests/harness/pgcluster.sh) under a temp dir, initialises
# pgbench on old, starts pgbouncer and pgdual in front of old, waits until no `ctest` or
# `cmake --build` process shares the cores, then runs for each round, target and workload one
# pgbench -T DURATION. Per run it records tps, average latency and the proxy's CPU seconds
# (utime+stime of the proxy process from /proc/PID/stat) divided by the statements executed.
# Prints the table and writes it as markdown to tools/bench/results-latest.md.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$PWD
HERE=$REPO/tools/bench
COMMAND_LINE="tools/bench/run.sh${*:+ $*}"

MODE=full
case "${1:-}" in
"") ;;
--quick) MODE=quick ;;
--profile) MODE=profile ;;
-h | --help)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: tools/bench/run.sh [--quick|--profile]" >&2
    exit 2
    ;;
esac

if [[ $MODE == quick ]]; then
    ROUNDS=1
    DURATION=3
else
    ROUNDS=${ROUNDS:-3}
    DURATION=${DURATION:-10}
fi
SCALE=${SCALE:-10}
WAIT_MAX_S=${WAIT_MAX_S:-1200}
PG_BIN_DEFAULT=/usr/lib/postgresql/15/bin
PGDUAL_BIN=${PGDUAL_BIN:-$REPO/build/pgdual}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
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
# Targets, in the order they run inside a round.
# TODO(dual-write): once pgdual mirrors writes to new, add the targets `pgdual-lockstep`
# (mirror_order = lockstep), `pgdual-parallel` (mirror_order = parallel) and `pgpool`
# (pgpool-II native replication mode over old+new, the dual-write baseline): append them here,
# start them in start_dual_write_targets() and give them a port in target_port(). Until then
# TPC-B through pgdual writes to old only.
TARGETS=(direct pgbouncer pgdual)

log() { echo "bench: $*" >&2; }
die() {
    log "$*"
    exit 1
}

TMP=""
PGDUAL_PID=""
PGBOUNCER_RUNUSER_PID=""
PGBOUNCER_PID=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$PGDUAL_PID" ]] && kill -0 "$PGDUAL_PID" 2>/dev/null; then
        stop_pid "$PGDUAL_PID"
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

# SIGTERM, wait up to 10 s, then SIGKILL.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
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

# Proxy pid of a target, or empty for targets with no proxy.
target_pid() {
    case "$1" in
    direct) echo "" ;;
    pgbouncer) echo "$PGBOUNCER_PID" ;;
    pgdual) echo "$PGDUAL_PID" ;;
    # TODO(dual-write): pgdual-lockstep | pgdual-parallel | pgpool
    *) die "unknown target $1" ;;
    esac
}

target_port() {
    case "$1" in
    direct) echo "$OLD_PORT" ;;
    pgbouncer) echo "$PGBOUNCER_PORT" ;;
    pgdual) echo "$PGDUAL_PORT" ;;
    # TODO(dual-write): pgdual-lockstep | pgdual-parallel | pgpool
    *) die "unknown target $1" ;;
    esac
}

psql_old() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$OLD_PORT" -U postgres -d postgres "$@"
}

start_clusters() {
    tests/harness/pgcluster.sh start "$TMP/pg" >&2
    # shellcheck disable=SC1091
    source "$TMP/pg/cluster.env"
    PG_BIN=${PG_BIN:-$PG_BIN_DEFAULT}
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

start_pgdual() {
    local dir=$TMP/pgdual try mirror_line=""
    mkdir -p "$dir"
    # The `pgdual` target is the primary-only proxy (mirror = off: writes go to old only; new has
    # no pgbench tables, so mirrored TPC-B writes would fail there and flood divergences.jsonl).
    # Dual-write is measured by the future pgdual-lockstep / pgdual-parallel targets.
    local reference
    reference=$("$PGDUAL_BIN" --config-reference 2>/dev/null || true)
    if grep -Eq '^[|] [[]cutover[]] [|] .mirror. [|]' <<<"$reference"; then
        mirror_line="mirror = off"
    fi
    for try in 1 2 3 4 5; do
        PGDUAL_PORT=$(pick_port)
        # log_level = warning: the "listening on" line is not printed, so readiness is
        # detected with pg_isready on the configured port.
        cat >"$dir/pgdual.ini" <<EOF
; tools/bench/run.sh
[pgdual]
listen_addr = 127.0.0.1
listen_port = $PGDUAL_PORT
workers = 2
max_client_conn = 200
log_level = warning
auth_type = trust
admin_users = admin
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
mirror_order = lockstep
commit_wait = both
on_read_divergence = log
$mirror_line
EOF
        "$PGDUAL_BIN" -c "$dir/pgdual.ini" 2>>"$dir/pgdual.log" </dev/null &
        PGDUAL_PID=$!
        PGDUAL_MIRROR_NOTE=${mirror_line:-"no mirror dial in this build"}
        if wait_accepting "$PGDUAL_PORT" "$PGDUAL_PID"; then
            log "pgdual (pid $PGDUAL_PID) on 127.0.0.1:$PGDUAL_PORT"
            return 0
        fi
        log "pgdual start on $PGDUAL_PORT failed (try $try)"
        stop_pid "$PGDUAL_PID"
        PGDUAL_PID=""
    done
    tail -n 20 "$dir/pgdual.log" >&2 || true
    die "pgdual did not start"
}

# TODO(dual-write): start pgdual-lockstep / pgdual-parallel (pgdual with writes mirrored to new)
# and pgpool here; they need the pgbench tables on new as well (pgbench -i on new).
start_dual_write_targets() { :; }

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
    local tps lat txns failed status=ok
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | head -n1)
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | head -n1)
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n1)
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n1)
    if [[ $rc -ne 0 || -z "$tps" || -z "$txns" || ${failed:-0} -ne 0 ]]; then
        status="error(rc=$rc,failed=${failed:-?})"
        log "round $round $target $name: $status; output tail:"
        tail -n 5 "$out" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$name" "${tps:-NA}" \
        "${lat:-NA}" "${ticks:-NA}" "$((${txns:-0} * per_txn))" "$status" >>"$TMP/results.tsv"
    log "round $round $(printf '%-9s %-20s' "$target" "$name") tps=${tps:-NA} lat=${lat:-NA}ms" \
        "cpu_ticks=${ticks:--} queries=$((${txns:-0} * per_txn)) $status"
}

# Builds the table (tab separated) from results.tsv: medians over rounds (ok rows only).
# Columns: workload target tps latency ratio cpu_per_10k rounds_ok rounds_total
summarize() {
    awk -F'\t' -v tck="$CLK_TCK" '
    function median(s,    n, a, i, j, t) {
        n = split(s, a, " ")
        if (n == 0) return "NA"
        for (i = 2; i <= n; i++) { t = a[i] + 0; j = i - 1
            while (j > 0 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- } a[j + 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        k = $3 SUBSEP $2
        if (!($3 in wseen)) { wseen[$3] = 1; wl[++nw] = $3 }
        if (!($2 in tseen)) { tseen[$2] = 1; tl[++nt] = $2 }
        if (!(k in total)) { order[++nk] = k }
        total[k]++
        if ($8 != "ok") next
        ok[k]++
        tps[k] = tps[k] " " $4; lat[k] = lat[k] " " $5
        if ($6 != "NA" && $7 > 0) cpu[k] = cpu[k] " " ($6 / tck) / $7 * 10000
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
    }' "$TMP/results.tsv"
}

versions() {
    echo "- pgdual: $("$PGDUAL_BIN" --version 2>&1 | head -n1) ($PGDUAL_BIN)"
    echo "- pgbouncer: $("$PGBOUNCER_BIN" --version 2>&1 | head -n1)"
    echo "- pgbench: $("$PGBENCH_BIN" --version 2>&1 | head -n1)"
    echo "- server: $(psql_old -At -c 'SELECT version()' | head -n1)"
    echo "- kernel: $(uname -sr); CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
}

report() {
    local table=$TMP/table.tsv pgd_cpu pgd_tps pgb_tps ratio cpu_verdict tps_verdict
    summarize >"$table"
    pgd_cpu=$(awk -F'\t' '$1 == "select-prepared-c16" && $2 == "pgdual" { print $6 }' "$table")
    pgd_tps=$(awk -F'\t' '$1 == "select-prepared-c16" && $2 == "pgdual" { print $3 }' "$table")
    pgb_tps=$(awk -F'\t' '$1 == "select-prepared-c16" && $2 == "pgbouncer" { print $3 }' "$table")
    ratio=$(awk -v a="$pgd_tps" -v b="$pgb_tps" 'BEGIN { if (a != "NA" && b != "NA" && b > 0) printf "%.2f", a / b; else print "NA" }')
    cpu_verdict=$(awk -v c="$pgd_cpu" 'BEGIN { if (c == "" || c == "-" || c == "NA") print "n/a"; else print (c <= 0.10 ? "MET" : "NOT MET") }')
    tps_verdict=$(awk -v r="$ratio" 'BEGIN { if (r == "NA") print "n/a"; else print (r >= 1.3 ? "MET" : "NOT MET") }')

    local md=$HERE/results-latest.md body
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

    echo
    column -t -s$'\t' -N workload,target,median_tps,median_lat_ms,ratio_direct,cpu_s_per_10k,ok,runs "$table" 2>/dev/null ||
        cat "$table"
    echo
    echo "$headline"
    [[ -n "$problems" ]] && echo "$problems"

    {
        echo "# pgdual benchmark: latest results"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "- command: \`$COMMAND_LINE\` (ROUNDS=$ROUNDS, DURATION=${DURATION}s, SCALE=$SCALE)"
        echo "- nproc: $(nproc); load average before measuring: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
        [[ -n "${QUIET_NOTE:-}" ]] && echo "- WARNING: $QUIET_NOTE"
        versions
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
        echo "Headline figures:"
        echo
        echo "$headline"
        if [[ -n "$problems" ]]; then
            echo
            echo "Notes:"
            echo
            echo '```'
            echo "$problems"
            echo '```'
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
    [[ -x "$PGBOUNCER_BIN" ]] || die "pgbouncer not found (set PGBOUNCER_BIN)"
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

    start_clusters
    start_pgbouncer
    start_pgdual
    start_dual_write_targets

    wait_quiet
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    if [[ $MODE == profile ]]; then
        profile
        return 0
    fi
    log "mode $MODE: $ROUNDS round(s) x ${#TARGETS[@]} targets x ${#WORKLOADS[@]} workloads x ${DURATION}s"
    local round target spec
    for ((round = 1; round <= ROUNDS; round++)); do
        for target in "${TARGETS[@]}"; do
            for spec in "${WORKLOADS[@]}"; do
                run_one "$round" "$target" "$spec"
            done
        done
    done
    report
}

main
