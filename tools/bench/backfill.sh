#!/usr/bin/env bash
# tools/bench/backfill.sh: issue 13's benchmarks of the seed step and the catch-up, on a private
# pair of PostgreSQL clusters (tests/harness/pgcluster.sh; BENCH_CLUSTER=DIR reuses one).
#
#   tools/bench/backfill.sh copy     pgbench_accounts at scale BF_SCALE (default 100 = 10M rows)
#                                    into an empty new: the plain pipe `psql old -c "COPY ... TO
#                                    STDOUT" | psql new -c "COPY ... FROM STDIN"` vs `pgdual-verify
#                                    --live --repair --apply --tables pgbench_accounts` (copy and
#                                    the pass after it), TRUNCATE on new before each, interleaved,
#                                    BF_ROUNDS (default 2) rounds each. Target: verify <= 1.3x.
#   tools/bench/backfill.sh tpcb     TPC-B (8 clients, -M prepared, TPCB_SECONDS, default 20)
#                                    through pgdual (lockstep, state seeding after admin SEED) at
#                                    BF_SCALE, with a backfill of pgbench_accounts running vs
#                                    without (new's accounts emptied before both), interleaved,
#                                    BF_ROUNDS rounds. Target: with >= 0.5x without.
#   tools/bench/backfill.sh catchup  scale CU_SCALE (default 20), both sides loaded, pgdual with
#                                    reconcile_auto = on, TPC-B (8 clients) through it; new stopped
#                                    -m immediate for CU_OUTAGE (default 20) s, started again: time
#                                    from the restart to secondary_state = in_sync, vs one plain
#                                    pgdual-verify pass of all tables after the load. Target <= 3x.
#   tools/bench/backfill.sh all      the three, in that order
#
# Environment: PGDUAL_BIN (default build/pgdual), PGDUAL_VERIFY_BIN (default build/pgdual-verify),
# BENCH_CLUSTER, BF_SCALE, BF_ROUNDS, TPCB_SECONDS, CU_SCALE, CU_OUTAGE, BF_VERIFY_ARGS (more
# pgdual-verify options for the copy and tpcb backfills, e.g. --jobs 1), KEEP=1 (keep the temp
# dir: pgdual logs, pgbench and pgdual-verify outputs). Figures go to stdout
# (markdown), progress to stderr.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PGCLUSTER=$REPO/tests/harness/pgcluster.sh
PGDUAL_BIN=$(realpath "${PGDUAL_BIN:-$REPO/build/pgdual}")
VERIFY=$(realpath "${PGDUAL_VERIFY_BIN:-$REPO/build/pgdual-verify}")
BF_SCALE=${BF_SCALE:-100}
BF_ROUNDS=${BF_ROUNDS:-2}
TPCB_SECONDS=${TPCB_SECONDS:-20}
CU_SCALE=${CU_SCALE:-20}
CU_OUTAGE=${CU_OUTAGE:-20}
WHAT=${1:-all}
read -r -a BF_VARGS <<<"${BF_VERIFY_ARGS:-}"
TMP=$(mktemp -d /tmp/pgdual-bench-backfill.XXXXXX)
chmod 0755 "$TMP"
OWN_CLUSTER=0
PROXY_PID=""
LOAD_PID=""

log() { echo "bench: $*" >&2; }
die() {
    log "$*"
    exit 1
}
now() { date +%s.%N; }
secs() { printf '%.2f' "$(echo "$2 - $1" | bc -l)"; }

cleanup() {
    set +e
    [[ -z "$LOAD_PID" ]] || kill "$LOAD_PID" 2>/dev/null
    if [[ -n "$PROXY_PID" ]]; then
        kill -TERM "$PROXY_PID" 2>/dev/null
        wait "$PROXY_PID" 2>/dev/null
    fi
    if ((OWN_CLUSTER)); then bash "$PGCLUSTER" stop "$CLUSTER" >/dev/null 2>&1; fi
    [[ -n ${KEEP:-} ]] || rm -rf "$TMP"
}
trap cleanup EXIT

if [[ -n "${BENCH_CLUSTER:-}" ]]; then
    CLUSTER=$BENCH_CLUSTER
else
    CLUSTER=$TMP/pg
    bash "$PGCLUSTER" start "$CLUSTER" >&2
    OWN_CLUSTER=1
fi
# shellcheck disable=SC1091
source "$CLUSTER/cluster.env"
export PGHOST=127.0.0.1 PGUSER=postgres
unset PGPORT PGDATABASE

q() { # q PORT DB SQL
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d "$2" -Atc "$3"
}
ci() { echo "host=127.0.0.1 port=$1 user=postgres dbname=$2"; }
admin() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U admin -d pgdual -Atc "$1"; }
status() { admin "SHOW STATUS" | awk -F'|' -v k="$1" '$1 == k { print $2 }'; }

# fresh_db PORT DB: drops and creates DB.
fresh_db() {
    q "$1" postgres "DROP DATABASE IF EXISTS $2 WITH (FORCE)"
    q "$1" postgres "CREATE DATABASE $2"
}

# pgbench_db DB SCALE: DB with pgbench -i on old; new gets old's schema only (or, with a third
# argument "both", pgbench -i too).
pgbench_db() {
    local db=$1 scale=$2
    fresh_db "$OLD_PORT" "$db"
    fresh_db "$NEW_PORT" "$db"
    log "pgbench -i -s $scale on old ($db)"
    pgbench -h 127.0.0.1 -p "$OLD_PORT" -U postgres -i -q -s "$scale" "$db" >/dev/null 2>&1
    q "$OLD_PORT" "$db" "VACUUM ANALYZE"
    if [[ "${3:-}" == both ]]; then
        log "pgbench -i -s $scale on new ($db)"
        pgbench -h 127.0.0.1 -p "$NEW_PORT" -U postgres -i -q -s "$scale" "$db" >/dev/null 2>&1
        q "$NEW_PORT" "$db" "VACUUM ANALYZE"
    else
        pg_dump --schema-only -h 127.0.0.1 -p "$OLD_PORT" -U postgres "$db" |
            psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$NEW_PORT" -U postgres -d "$db" >/dev/null
    fi
}

# start_pgdual NAME [ini lines...]: pgdual on a free port (PROXY_PORT, PROXY_PID, PROXY_INI).
start_pgdual() {
    local name=$1 dir=$TMP/$1 line
    shift
    mkdir -p "$dir"
    PROXY_INI=$dir/pgdual.ini
    {
        printf '[pgdual]\nlisten_addr = 127.0.0.1\nlisten_port = 0\nworkers = 2\n'
        printf 'auth_type = trust\nadmin_users = admin\nstate_file = pgdual.state\n'
        # A loopback-only benchmark: the console without a password (README "Admin console
        # security").
        printf 'admin_auth_trust = on\n'
        printf 'journal_dir = journal\ndivergence_log = divergences.jsonl\nmetrics_port = 0\n'
        printf 'log_level = info\nreconcile_user = postgres\n'
        for line in "$@"; do echo "$line"; done
        printf '[backends]\nold = host=127.0.0.1 port=%s\nnew = host=127.0.0.1 port=%s\n' \
            "$OLD_PORT" "$NEW_PORT"
        printf '[cutover]\nprimary = old\nread_new_percent = 0\ncompare_percent = 0\n'
        printf 'mirror_order = lockstep\ncommit_wait = both\n'
    } >"$PROXY_INI"
    "$PGDUAL_BIN" -c "$PROXY_INI" >"$dir/pgdual.log" 2>&1 </dev/null &
    PROXY_PID=$!
    for _ in $(seq 200); do
        PROXY_PORT=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9]*' "$dir/pgdual.log" | sed 's/.*://' || true)
        [[ -n "$PROXY_PORT" ]] && return 0
        kill -0 "$PROXY_PID" 2>/dev/null || break
        sleep 0.05
    done
    tail -20 "$dir/pgdual.log" >&2
    die "pgdual $name did not start"
}
stop_pgdual() {
    [[ -n "$PROXY_PID" ]] || return 0
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=""
}

# tps FILE: the tps figure of a pgbench output.
tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$1" | head -1; }
failed() { sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$1" | head -1; }

mean() { awk '{ s += $1; n++ } END { if (n) printf "%.2f", s / n; else print "n/a" }'; }
ratio() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.2f", $1 / $2; else print "n/a" }'; }

# --- copy: plain pipe vs the tool's backfill ----------------------------------------------------
bench_copy() {
    local db=bench_bf_s$BF_SCALE r m t0 t1 rows order
    pgbench_db "$db" "$BF_SCALE"
    q "$OLD_PORT" "$db" "SELECT count(*) FROM pgbench_accounts" >/dev/null # warm old's cache
    : >"$TMP/copy.times"
    for ((r = 1; r <= BF_ROUNDS; r++)); do
        order="pipe verify"
        ((r % 2 == 0)) && order="verify pipe"
        for m in $order; do
            q "$NEW_PORT" "$db" "TRUNCATE pgbench_accounts"
            q "$NEW_PORT" "$db" "CHECKPOINT"
            q "$OLD_PORT" "$db" "CHECKPOINT"
            log "copy round $r: $m"
            t0=$(now)
            if [[ $m == pipe ]]; then
                psql -X -h 127.0.0.1 -p "$OLD_PORT" -U postgres -d "$db" \
                    -c "COPY pgbench_accounts TO STDOUT" |
                    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$NEW_PORT" -U postgres -d "$db" \
                        -c "COPY pgbench_accounts FROM STDIN"
            else
                "$VERIFY" --old "$(ci "$OLD_PORT" "$db")" --new "$(ci "$NEW_PORT" "$db")" \
                    --tables pgbench_accounts --live --repair --apply --no-progress "${BF_VARGS[@]}" \
                    --json "$TMP/copy.$r.json" >"$TMP/copy.$r.out" 2>&1 ||
                    die "pgdual-verify failed: $(tail -5 "$TMP/copy.$r.out")"
            fi
            t1=$(now)
            rows=$(q "$NEW_PORT" "$db" "SELECT count(*) FROM pgbench_accounts")
            [[ "$rows" == $((BF_SCALE * 100000)) ]] || die "$m left $rows rows on new"
            echo "$r $m $(secs "$t0" "$t1")" >>"$TMP/copy.times"
            log "copy round $r: $m $(secs "$t0" "$t1") s"
        done
    done
    local pipe verify
    pipe=$(awk '$2 == "pipe" { print $3 }' "$TMP/copy.times" | mean)
    verify=$(awk '$2 == "verify" { print $3 }' "$TMP/copy.times" | mean)
    echo "### Backfill of pgbench_accounts, scale $BF_SCALE ($((BF_SCALE * 100000)) rows), into an empty new${BF_VERIFY_ARGS:+ (pgdual-verify $BF_VERIFY_ARGS)}"
    echo
    echo "| round | plain COPY pipe (s) | pgdual-verify --live --repair --apply (s) | of which the copy (s) | ratio |"
    echo "|---|---|---|---|---|"
    for ((r = 1; r <= BF_ROUNDS; r++)); do
        local a b c
        a=$(awk -v r="$r" '$1 == r && $2 == "pipe" { print $3 }' "$TMP/copy.times")
        b=$(awk -v r="$r" '$1 == r && $2 == "verify" { print $3 }' "$TMP/copy.times")
        c=$(python3 -c 'import json, sys; print("%.2f" % json.load(open(sys.argv[1]))["backfill"]["seconds"])' \
            "$TMP/copy.$r.json" 2>/dev/null || echo "?")
        echo "| $r | $a | $b | $c | $(ratio "$b" "$a") |"
    done
    echo "| mean | $pipe | $verify | | **$(ratio "$verify" "$pipe")** (target <= 1.3) |"
    echo
}

# --- tpcb: TPC-B through pgdual with vs without a backfill running --------------------------
bench_tpcb() {
    local db=bench_bf_s$BF_SCALE r m order bf_pid t0 t1 bf_end
    if [[ "$(q "$OLD_PORT" postgres "SELECT count(*) FROM pg_database WHERE datname = '$db'")" != 1 ]]; then
        pgbench_db "$db" "$BF_SCALE"
    fi
    start_pgdual tpcb
    admin SEED >/dev/null
    : >"$TMP/tpcb.res"
    for ((r = 1; r <= BF_ROUNDS; r++)); do
        order="without with"
        ((r % 2 == 0)) && order="with without"
        for m in $order; do
            q "$NEW_PORT" "$db" "TRUNCATE pgbench_accounts"
            q "$OLD_PORT" "$db" "VACUUM pgbench_branches, pgbench_tellers"
            q "$NEW_PORT" "$db" "VACUUM pgbench_branches, pgbench_tellers"
            q "$OLD_PORT" "$db" "CHECKPOINT"
            q "$NEW_PORT" "$db" "CHECKPOINT"
            bf_pid=""
            if [[ $m == with ]]; then
                "$VERIFY" --old "$(ci "$OLD_PORT" "$db")" --new "$(ci "$NEW_PORT" "$db")" \
                    --tables pgbench_accounts --live --repair --apply --no-progress "${BF_VARGS[@]}" \
                    >"$TMP/tpcb.$r.bf" 2>&1 &
                bf_pid=$!
            fi
            log "tpcb round $r: $m a backfill"
            pgbench -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -n -c 8 -j 2 -M prepared \
                -T "$TPCB_SECONDS" "$db" >"$TMP/tpcb.$r.$m" 2>&1 || true
            if [[ -n "$bf_pid" ]]; then
                bf_end=running
                kill -0 "$bf_pid" 2>/dev/null || bf_end="ended before pgbench"
                wait "$bf_pid" || log "backfill exit $?: $(tail -3 "$TMP/tpcb.$r.bf")"
                log "tpcb round $r: the backfill was $bf_end at pgbench's end"
                [[ $bf_end == running ]] || echo "$r note backfill-ended-early" >>"$TMP/tpcb.res"
            fi
            echo "$r $m $(tps "$TMP/tpcb.$r.$m") $(failed "$TMP/tpcb.$r.$m")" >>"$TMP/tpcb.res"
            log "tpcb round $r: $m $(tps "$TMP/tpcb.$r.$m") tps, $(failed "$TMP/tpcb.$r.$m") failed"
        done
    done
    stop_pgdual
    local with without
    with=$(awk '$2 == "with" { print $3 }' "$TMP/tpcb.res" | mean)
    without=$(awk '$2 == "without" { print $3 }' "$TMP/tpcb.res" | mean)
    echo "### TPC-B through pgdual (8 clients, -M prepared, ${TPCB_SECONDS} s, scale $BF_SCALE, state seeding) with vs without a backfill of pgbench_accounts${BF_VERIFY_ARGS:+ (pgdual-verify $BF_VERIFY_ARGS)}"
    echo
    echo "| round | without (tps) | with (tps) | ratio |"
    echo "|---|---|---|---|"
    for ((r = 1; r <= BF_ROUNDS; r++)); do
        local a b
        a=$(awk -v r="$r" '$1 == r && $2 == "without" { print $3 }' "$TMP/tpcb.res")
        b=$(awk -v r="$r" '$1 == r && $2 == "with" { print $3 }' "$TMP/tpcb.res")
        echo "| $r | $a | $b | $(ratio "$b" "$a") |"
    done
    echo "| mean | $without | $with | **$(ratio "$with" "$without")** (target >= 0.5) |"
    echo
    echo "Failed transactions per run: $(awk '$2 != "note" { printf "%s ", $4 }' "$TMP/tpcb.res")."
    if grep -q note "$TMP/tpcb.res"; then
        echo "In some rounds the backfill ended before pgbench: those rounds understate its cost."
    fi
    echo
}

# --- catchup: 20 s outage of new under TPC-B ------------------------------------------------
bench_catchup() {
    local db=bench_cu_s$CU_SCALE t_stop t_start t_sync deadline st t0 t1 vrc=0
    pgbench_db "$db" "$CU_SCALE" both
    # pgdual runs the tool through a wrapper that adds --stats (a line per repaired table on
    # stderr, kept in cu.tool.err) and hands its stdout on unchanged, keeping a copy with
    # timestamps in cu.tool.out (a "progress:" line per table, a line per repaired row).
    cat >"$TMP/verify-tee.sh" <<EOF
#!/usr/bin/env bash
exec "$VERIFY" --stats "\$@" 2>>"$TMP/cu.tool.err" > >(perl -MTime::HiRes=time -ne 'BEGIN { \$| = 1; open(L, ">>", "$TMP/cu.tool.out") or die; select((select(L), \$| = 1)[0]) } print; printf L "%.3f %s", time, \$_')
EOF
    chmod 0755 "$TMP/verify-tee.sh"
    start_pgdual catchup "reconcile_auto = on" "reconcile_interval_ms = 1000" \
        "secondary_retry_ms = 500" "verify_path = $TMP/verify-tee.sh"
    [[ "$(status secondary_state)" == in_sync ]] || die "not in_sync at the start"
    log "catchup: TPC-B through pgdual"
    rm -f "$TMP/cu.stop"
    (
        n=0
        while [[ ! -e "$TMP/cu.stop" ]]; do
            n=$((n + 1))
            pgbench -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -n -c 8 -j 2 -M prepared -T 5 \
                "$db" >"$TMP/cu.bench.$n" 2>&1 || true
        done
    ) &
    LOAD_PID=$!
    sleep 5
    log "catchup: stopping new (-m immediate) for ${CU_OUTAGE}s"
    t_stop=$(now)
    bash "$PGCLUSTER" stop-one "$CLUSTER" new immediate >&2
    sleep "$CU_OUTAGE"
    bash "$PGCLUSTER" start-one "$CLUSTER" new >&2
    t_start=$(now)
    log "catchup: new started again; state $(status secondary_state)"
    deadline=$((SECONDS + 900))
    : >"$TMP/cu.states"
    while ((SECONDS < deadline)); do
        st=$(status secondary_state)
        [[ "$(tail -1 "$TMP/cu.states" | cut -d' ' -f2)" == "$st" ]] ||
            echo "$(secs "$t_start" "$(now)") $st" >>"$TMP/cu.states"
        [[ "$st" == in_sync ]] && break
        sleep 0.2
    done
    t_sync=$(now)
    [[ "$st" == in_sync ]] || die "no in_sync within 900 s of the restart: $(cat "$TMP/cu.states")"
    log "catchup: in_sync $(secs "$t_start" "$t_sync") s after the restart"
    touch "$TMP/cu.stop"
    wait "$LOAD_PID" || true
    LOAD_PID=""
    stop_pgdual
    t0=$(now)
    "$VERIFY" --old "$(ci "$OLD_PORT" "$db")" --new "$(ci "$NEW_PORT" "$db")" --no-progress \
        >"$TMP/cu.verify" 2>&1 || vrc=$?
    t1=$(now)
    echo "### Catch-up after a ${CU_OUTAGE} s outage of new under TPC-B (8 clients, -M prepared, scale $CU_SCALE)"
    echo
    echo "| restart -> in_sync (s) | one pgdual-verify pass, all tables, no load (s) | ratio |"
    echo "|---|---|---|"
    echo "| $(secs "$t_start" "$t_sync") | $(secs "$t0" "$t1") (exit $vrc) | **$(ratio "$(secs "$t_start" "$t_sync")" "$(secs "$t0" "$t1")")** (target <= 3) |"
    echo
    echo "States after the restart (s: state): $(tr '\n' ';' <"$TMP/cu.states")"
    echo "new was down $(secs "$t_stop" "$t_start") s. pgbench (runs of 5 s): $(cat "$TMP"/cu.bench.* |
        grep -c '^tps') runs, $(cat "$TMP"/cu.bench.* | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }') failed transactions, $(cat "$TMP"/cu.bench.* | grep -c 'aborted' || true) client aborts;" \
        "verify after: $(grep -m1 '^result' "$TMP/cu.verify" || true)"
    echo
}

echo "## tools/bench/backfill.sh $WHAT ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
case $WHAT in
copy) bench_copy ;;
tpcb) bench_tpcb ;;
catchup) bench_catchup ;;
all)
    bench_copy
    bench_tpcb
    bench_catchup
    ;;
*) die "usage: $0 copy|tpcb|catchup|all" ;;
esac
