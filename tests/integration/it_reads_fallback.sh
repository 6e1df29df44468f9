#!/usr/bin/env bash
# tests/integration/it_reads_fallback.sh: reads at dial 100 while new is down (stopped with -m
# immediate) are all answered by old, in sessions opened before and after the stop; once new is
# back, a new session reads from new again (no write was lost, so secondary_state stays in_sync).
# Runs alone (RUN_SERIAL): it stops the new cluster the other tests share.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with both backends"

DB=it_reads_fallback
it_createdb "$DB"
PGC="$(dirname "$0")/../harness/pgcluster.sh"
restart_new() { bash "$PGC" start-one "$CLUSTER_DIR" new >/dev/null 2>&1 || true; }
trap 'rc=$?; restart_new; (exit $rc); it_cleanup' EXIT

psql_old "$DB" -c "CREATE TABLE marker (v text)" -c "INSERT INTO marker VALUES ('old')"
psql_new "$DB" -c "CREATE TABLE marker (v text)" -c "INSERT INTO marker VALUES ('new')"
it_proxy_start cutover.read_new_percent=100 cutover.compare_percent=100

# Three sessions opened while new is up read new's marker.
for s in a b c; do
    it_session_open "$s" "$DB"
    it_session_send "$s" "SELECT v FROM marker;"
done
declare -A before=() # output lines of each open session before the stop
for s in a b c; do
    it_session_wait "$s" new || it_failed "session $s before the stop: $(cat "$IT_TMP/$s.out")"
    before[$s]=$(wc -l <"$IT_TMP/$s.out")
done

bash "$PGC" stop-one "$CLUSTER_DIR" new immediate
it_log "new stopped (immediate)"

# 100 reads in each open session and in each of two sessions opened after the stop: 500 in all.
for s in a b c; do
    for ((i = 0; i < 100; i++)); do
        it_session_send "$s" "SELECT v FROM marker;" || break
    done
done
declare -A pids=()
for s in d e; do
    for ((i = 0; i < 100; i++)); do
        echo "SELECT v FROM marker;"
    done >"$IT_TMP/$s.sql"
    timeout 60 psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -tA \
        -f "$IT_TMP/$s.sql" >"$IT_TMP/$s.out" 2>&1 &
    pids[$s]=$!
done
for s in d e; do
    if wait "${pids[$s]}"; then
        it_pass "session $s opened after the stop: psql exit 0"
    else
        it_failed "session $s opened after the stop: $(tail -c 1000 "$IT_TMP/$s.out")"
    fi
done
for s in a b c; do
    it_session_wait "$s" old 100 60 || true
    it_session_close "$s"
done
total_old=0
for s in a b c d e; do
    n=$(tail -n +"$((${before[$s]:-0} + 1))" "$IT_TMP/$s.out" | grep -cxF old || true)
    total_old=$((total_old + n))
    assert_eq 100 "$n" "session $s: 100 reads answered by old with new down"
    assert_not_contains "$(cat "$IT_TMP/$s.out")" "ERROR" "session $s saw no error"
done
assert_eq 500 "$total_old" "all 500 reads answered by old"
assert_eq "in_sync" "$(it_status secondary_state)" "no write was lost: secondary_state stays in_sync"

restart_new
it_log "new started again"
new_session_reads_new() {
    [[ "$(psql_proxy "$DB" -tA -c "SELECT v FROM marker" 2>/dev/null)" == new ]]
}
if it_wait_for 5 new_session_reads_new; then
    it_pass "after new is back, a new session at dial 100 reads new's marker"
else
    it_failed "after new is back: $(psql_proxy "$DB" -tA -c 'SELECT v FROM marker' 2>&1)"
fi
it_proxy_stop
