#!/usr/bin/env bash
# tests/integration/it_reconnect.sh: sessions get their secondary back (issue 13). New is stopped
# (-m immediate) while client sessions are idle and started again: the same sessions mirror again
# (a named prepared statement included: re-created on the new connection), a session whose
# secondary login failed at its start gets one, sessions_without_secondary goes back down, and a
# session that ran SET stays without its secondary (its write misses new). Runs alone
# (RUN_SERIAL): it stops a cluster the other tests share.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"
PQSCRIPT=${PGDUAL_PQSCRIPT:-$(dirname "$PGDUAL_BIN")/tests/pqscript}
[[ -x "$PQSCRIPT" ]] || it_fail "pqscript not found at $PQSCRIPT (cmake --build build)"

DB=it_reconnect
it_createdb "$DB"
PGC="$(dirname "$0")/../harness/pgcluster.sh"
# The cluster starts without the write ends of this test's FIFOs (its postmaster would keep them
# open, and the sessions reading them would never see their end).
restart_new() {
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            ((fd <= 2)) || eval "exec $fd>&-"
        done
        bash "$PGC" start-one "$CLUSTER_DIR" new >/dev/null 2>&1
    ) || true
}
PQ_PID=""
trap 'rc=$?; restart_new; [[ -z "$PQ_PID" ]] || kill "$PQ_PID" 2>/dev/null || true; (exit $rc); it_cleanup' EXIT
it_proxy_start pgdual.secondary_retry_ms=200
psql_proxy "$DB" -q -c "CREATE TABLE w (id int PRIMARY KEY, who text)"

# Session P: the extended protocol with a named prepared statement (pqscript fed from a FIFO).
mkfifo "$IT_TMP/p.in"
"$PQSCRIPT" "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB" <"$IT_TMP/p.in" \
    >"$IT_TMP/p.out" 2>&1 &
PQ_PID=$!
exec {PFD}>"$IT_TMP/p.in"
p_send() { printf '%s\n' "$1" >&"$PFD"; }
p_lines() { wc -l <"$IT_TMP/p.out"; }
p_has() { (($(p_lines) >= $1)); }
p_wait() { it_wait_for 20 p_has "$1"; }
# without_is N: sessions_without_secondary is N (polled by it_wait_for).
without_is() { [[ "$(it_status sessions_without_secondary)" == "$1" ]]; }
p_send $'P\tins\tINSERT INTO w VALUES ($1, $2)'
p_send $'E\tins\t1\tp'
p_wait 2 || it_fail "pqscript did not answer: $(cat "$IT_TMP/p.out")"
assert_contains "$(sed -n 2p "$IT_TMP/p.out")" "COMMAND_OK" "P inserts through its prepared statement"

# Session S: runs SET (session state pgdual cannot give a new connection).
it_session_open s "$DB"
it_session_send s "SET work_mem = '8MB';"
it_session_send s "SELECT 'ready-s';"
it_session_wait s ready-s || it_fail "session s did not answer"

assert_eq "0" "$(it_status sessions_without_secondary)" "every session has its secondary"
it_status_mark
bash "$PGC" stop-one "$CLUSTER_DIR" new immediate
if it_wait_for 20 without_is 2; then
    it_pass "both idle sessions noticed the lost secondary"
else
    it_failed "sessions_without_secondary is $(it_status sessions_without_secondary), want 2"
fi
# Session C logs in while new is down: its secondary login fails.
it_session_open c "$DB"
it_session_send c "SELECT 'ready-c';"
it_session_wait c ready-c 1 20 || it_fail "session c did not answer with new down"
assert_eq "3" "$(it_status sessions_without_secondary)" "C has no secondary either"
assert_eq "in_sync" "$(it_status secondary_state)" "no write missed new: still in_sync"

restart_new
if it_wait_for 30 without_is 1; then
    it_pass "P and C got their secondary back; S did not"
else
    it_failed "sessions_without_secondary is $(it_status sessions_without_secondary), want 1"
fi
assert_delta secondary_reconnects_total -eq 2 "two reconnects counted"

p_send $'E\tins\t2\tp'
p_wait 3 || it_fail "pqscript did not answer: $(cat "$IT_TMP/p.out")"
assert_contains "$(sed -n 3p "$IT_TMP/p.out")" "COMMAND_OK" "P's prepared statement runs after the reconnect"
it_session_send c "INSERT INTO w VALUES (3, 'c');"
it_session_send c "SELECT 'done-c';"
it_session_wait c done-c || it_fail "session c did not answer"
assert_eq "in_sync" "$(it_status secondary_state)" "P's and C's writes reached new: in_sync"
assert_eq "1,2,3" "$(psql_new "$DB" -tA -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM w")" \
    "the rows P and C wrote after the reconnect are on new"
assert_delta divergences_total -eq 0 "no divergence"

it_session_send s "INSERT INTO w VALUES (4, 's');"
it_session_send s "SELECT 'done-s';"
it_session_wait s done-s || it_fail "session s did not answer"
assert_eq "lagging" "$(it_status secondary_state)" "S's write missed new: lagging"
assert_eq "1,2,3,4" "$(psql_old "$DB" -tA -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM w")" "old has every row"
assert_eq "0" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM w WHERE id = 4")" "new lacks S's row"
assert_contains "$(cat "$PROXY_LOG")" "stays without its secondary until it ends" "the log says why S does not reconnect"

# The last opened first: each inherited the write ends of the FIFOs opened before it.
it_session_close c
it_session_close s
exec {PFD}>&-
wait "$PQ_PID" 2>/dev/null || true
PQ_PID=""
if it_wait_for 10 without_is 0; then
    it_pass "sessions_without_secondary back to 0 once S ended"
else
    it_failed "sessions_without_secondary is $(it_status sessions_without_secondary)"
fi
it_proxy_stop
