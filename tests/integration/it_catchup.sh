#!/usr/bin/env bash
# tests/integration/it_catchup.sh: out of sync -> reconciled -> in sync with no operator action
# (issue 13, acceptance): new stopped (-m immediate) in the middle of an 8-client TPC-B (-M
# prepared) through pgdual and started again: lagging -> reconciling -> in_sync, no client error,
# verify exits 0. pgdual killed (-9) while lagging and started again: the state survives and the
# catch-up completes. A write that fails on new only: diverged, no read served by new, then the
# automatic pass brings it back. PGDUAL_TEST_OUTAGE_S (default 3) is new's outage: 20 for the
# issue's figure; PGDUAL_TEST_CATCHUP_S (default 180) the deadline of each catch-up.
#
# It runs its own pair of clusters: it stops new, and the automatic passes cover every database
# (the reconciliation list is `*`): on the shared fixture they would compare every other test's
# database too, some of which differ in schema on purpose (a pass over them never ends in_sync).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PGC=$HERE/../harness/pgcluster.sh
CU_DIR=$(mktemp -d /tmp/pgdual-it_catchup-pg.XXXXXX)
chmod 0755 "$CU_DIR"
if ! bash "$PGC" start "$CU_DIR/pg" >"$CU_DIR/pgcluster.out" 2>&1; then
    cat "$CU_DIR/pgcluster.out" >&2
    bash "$PGC" stop "$CU_DIR/pg" >/dev/null 2>&1 || true
    rm -rf "$CU_DIR"
    echo "0 passed, 1 failed"
    exit 1
fi
export PGDUAL_TEST_CLUSTER=$CU_DIR/pg
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$HERE/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"
VERIFY=${PGDUAL_VERIFY_BIN:-$(dirname "$PGDUAL_BIN")/pgdual-verify}
[[ -x "$VERIFY" ]] || it_fail "pgdual-verify not found at $VERIFY"
OUTAGE=${PGDUAL_TEST_OUTAGE_S:-3}
CATCHUP=${PGDUAL_TEST_CATCHUP_S:-180}

DB=it_catchup
it_createdb "$DB"
restart_new() { bash "$PGC" start-one "$CLUSTER_DIR" new >/dev/null 2>&1 || true; }
cu_cleanup() {
    local rc=$?
    set +e
    trap - ERR
    [[ -z "$PROXY_PID" ]] || it_proxy_stop
    bash "$PGC" stop "$CU_DIR/pg" >/dev/null 2>&1
    rm -rf "$CU_DIR"
    (exit "$rc")
    it_cleanup
}
trap cu_cleanup EXIT
AUTO=(pgdual.reconcile_auto=on pgdual.reconcile_interval_ms=300 pgdual.secondary_retry_ms=200
    pgdual.reconcile_user=postgres "pgdual.verify_path=$VERIFY")
state_is() { [[ "$(it_status secondary_state)" == "$1" ]]; }
verify_equal() {
    "$VERIFY" --old "host=127.0.0.1 port=$OLD_PORT user=postgres dbname=$DB" \
        --new "host=127.0.0.1 port=$NEW_PORT user=postgres dbname=$DB" >"$IT_TMP/verify.out" 2>&1
}

it_proxy_start "${AUTO[@]}"
pgbench -i -q -s 1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres "$DB" >"$IT_TMP/init.out" 2>&1 ||
    it_fail "pgbench -i: $(tail -5 "$IT_TMP/init.out")"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync after pgbench -i"

# 1. New down in the middle of TPC-B.
pgbench -n -c 8 -j 2 -M prepared -T $((OUTAGE + 10)) -h 127.0.0.1 -p "$PROXY_PORT" -U postgres \
    "$DB" >"$IT_TMP/tpcb.out" 2>&1 &
load=$!
# Every client prepares each statement of its script when it first runs it. One prepared while
# new is down is counted at each Execute (pgdual could not analyse it: diverged, not lagging), so
# new stops only once each of the 8 backends on old has been seen holding two different
# transaction ids: its first transaction ended, every statement of the script ran once. (A fixed
# sleep was too short on a loaded machine; one transaction id was not enough either: a client
# seen at its first UPDATE had not yet prepared its INSERT, and a fresh-clone run diverged.)
: >"$IT_TMP/xid_pids"
clients_all_committed() {
    psql_old "$DB" -tA -F ' ' -c "SELECT pid, backend_xid FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()" >>"$IT_TMP/xid_pids"
    (($(sort -u "$IT_TMP/xid_pids" | awk 'NF == 2 { n[$1]++ } END { c = 0; for (p in n) if (n[p] >= 2) c++; print c }') >= 8))
}
it_wait_for 30 clients_all_committed || it_fail "setup: not every pgbench client finished a transaction within 30 s"
kill -0 "$load" 2>/dev/null || it_fail "setup: pgbench ended before new was stopped"
bash "$PGC" stop-one "$CLUSTER_DIR" new immediate
if it_wait_for 10 state_is lagging; then it_pass "lagging once new is down"; else it_failed "state $(it_status secondary_state)"; fi
sleep "$OUTAGE" # the outage itself
restart_new
if wait "$load"; then it_pass "pgbench exit 0"; else it_failed "pgbench failed: $(tail -5 "$IT_TMP/tpcb.out")"; fi
assert_contains "$(cat "$IT_TMP/tpcb.out")" "number of failed transactions: 0" "no client saw an error"
if it_wait_for "$CATCHUP" state_is in_sync; then
    it_pass "back to in_sync with no operator action"
else
    it_failed "state $(it_status secondary_state): $(grep reconcile "$PROXY_LOG" | tail -5)"
fi
log=$(cat "$PROXY_LOG")
assert_match "$log" "lagging -> reconciling: reconciliation pass [0-9]+ begins \\(pgdual's catch-up\\)" "lagging -> reconciling"
assert_match "$log" "reconciling -> in_sync" "reconciling -> in_sync"
assert_eq "0" "$(it_status sessions_without_secondary)" "every session has its secondary"
if verify_equal; then it_pass "verify exits 0: old and new equal"; else it_failed "verify: $(tail -5 "$IT_TMP/verify.out")"; fi

# 2. kill -9 of pgdual while lagging: the state survives, the catch-up completes.
bash "$PGC" stop-one "$CLUSTER_DIR" new immediate
psql_proxy "$DB" -q -c "UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid = 42"
assert_eq "lagging" "$(it_status secondary_state)" "a write while new is down: lagging"
assert_contains "$(cat "$IT_TMP/pgdual.state")" "secondary_state = lagging" "the state file says lagging"
kill -KILL "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null || true
PROXY_PID=""
restart_new
it_proxy_start "${AUTO[@]}"
if it_wait_for "$CATCHUP" state_is in_sync; then it_pass "catch-up after the restart: in_sync"; else it_failed "state $(it_status secondary_state)"; fi
if verify_equal; then it_pass "verify exits 0 after the restart's catch-up"; else it_failed "verify: $(tail -5 "$IT_TMP/verify.out")"; fi
it_proxy_stop

# 3. A write that fails on new only: diverged, reads stop going to new; the pass brings it back.
it_proxy_start pgdual.reconcile_auto=off "${AUTO[@]:1}"
it_dials read_new_percent=100 # the state file keeps the dials of the runs before
psql_new "$DB" -q -c "INSERT INTO pgbench_branches (bid, bbalance) VALUES (1000, 0)"
assert_eq "INSERT 0 1" "$(psql_proxy "$DB" -c "INSERT INTO pgbench_branches (bid, bbalance) VALUES (1000, 5)")" \
    "the insert succeeds on old (new already has the key)"
assert_eq "diverged" "$(it_status secondary_state)" "diverged"
it_status_mark
psql_proxy "$DB" -tA -c "SELECT count(*) FROM pgbench_branches" >/dev/null
assert_delta reads_served_new -eq 0 "no read served by new while diverged"
sed -i 's/^reconcile_auto = off/reconcile_auto = on/' "$PROXY_INI"
assert_ok "RELOAD turns reconcile_auto on" -- psql_admin "RELOAD"
if it_wait_for "$CATCHUP" state_is in_sync; then it_pass "the automatic pass: in_sync"; else it_failed "state $(it_status secondary_state)"; fi
assert_eq "5" "$(psql_new "$DB" -tA -c "SELECT bbalance FROM pgbench_branches WHERE bid = 1000")" "new holds old's row"
it_status_mark
psql_proxy "$DB" -tA -c "SELECT count(*) FROM pgbench_branches" >/dev/null
assert_delta reads_served_new -eq 1 "reads go to new again once in_sync"
if verify_equal; then it_pass "verify exits 0"; else it_failed "verify: $(tail -5 "$IT_TMP/verify.out")"; fi
it_proxy_stop
