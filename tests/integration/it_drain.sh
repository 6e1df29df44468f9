#!/usr/bin/env bash
# tests/integration/it_drain.sh: SIGTERM drains: the listener closes at once (new connections
# refused), idle sessions get FATAL 57P01 at once, a session inside a transaction keeps working
# until it commits (the rows reach old and new), then pgdual exits 0; a transaction still open
# at shutdown_timeout_ms is closed (rolled back) and pgdual exits 0; SIGINT stops at once.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "draining is pgdual's (PGDUAL_TEST_DIRECT=1)"

DB=it_drain
it_createdb "$DB"

now_ms() { date +%s%3N; }
# session NAME FD: a psql through pgdual reading commands from a FIFO (opened on FD by caller).
session() {
    mkfifo "$IT_TMP/$1.in"
    PGAPPNAME=$1 psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -tA \
        -f "$IT_TMP/$1.in" >"$IT_TMP/$1.out" 2>&1 &
}
out_has() { grep -q -- "$2" "$IT_TMP/$1.out"; }
# backends APP PORT: backends of application APP on the cluster at PORT.
backends() {
    psql -X -q -h 127.0.0.1 -p "$2" -U postgres -d postgres -tA -c \
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1'"
}
no_backend() { [[ "$(backends "$1" "$OLD_PORT")" == 0 ]]; }
refused() { ! psql -X -w -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -tAc 'SELECT 1'; }
alive() { kill -0 "$PROXY_PID" 2>/dev/null; }
gone() { ! alive; }
# proxy_exit LIMIT_S: waits up to LIMIT_S for pgdual to exit; its exit status goes to STATUS
# ("still-running" if it did not exit).
STATUS=""
proxy_exit() {
    local pid=$PROXY_PID rc=0
    if ! it_wait_for "$1" gone; then
        STATUS="still-running"
        return 0
    fi
    PROXY_PID=""
    wait "$pid" 2>/dev/null || rc=$?
    STATUS=$rc
    it_check_sanitizer_log # each it_proxy_start truncates the log: check this run's now
}

# --- a transaction finishes, an idle session goes at once ---------------------------------------
it_proxy_start pgdual.shutdown_timeout_ms=20000
assert_ok "create table" -- psql_proxy "$DB" -c "CREATE TABLE d (v text)"

session intx
intx_pid=$!
exec 7>"$IT_TMP/intx.in"
session idle
idle_pid=$!
exec 8>"$IT_TMP/idle.in"
echo "BEGIN; INSERT INTO d VALUES ('before-term'); SELECT 'intx-' || 'ready';" >&7
echo "SELECT 'idle-' || 'ready';" >&8
it_wait_for 10 out_has intx intx-ready || it_fail "transaction session did not start"
it_wait_for 10 out_has idle idle-ready || it_fail "idle session did not start"

t0=$(now_ms)
kill -TERM "$PROXY_PID"
if it_wait_for 5 refused; then
    it_pass "new connections are refused after SIGTERM"
else
    it_failed "a new connection still got in after SIGTERM"
fi
assert_contains "$(psql -X -w -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -tAc 'SELECT 1' \
    2>&1 || true)" "refused" "the new connection's error is 'Connection refused'"
if it_wait_for 5 no_backend idle; then
    it_pass "the idle session's backend on old is closed at once"
else
    it_failed "the idle session's backend on old is still there"
fi
echo "SELECT 'idle-' || 'after';" >&8
exec 8>&-
rc=0
wait "$idle_pid" 2>/dev/null || rc=$?
assert_eq "1" "$((rc != 0))" "the idle psql fails its next statement (status $rc)"
assert_contains "$(cat "$IT_TMP/idle.out")" "pgdual is shutting down" "the idle session got the FATAL"
assert_not_contains "$(cat "$IT_TMP/idle.out")" "idle-after" "nothing ran on the closed session"

assert_eq "yes" "$(alive && echo yes || echo no)" "pgdual still runs while a transaction is open"
echo "INSERT INTO d VALUES ('after-term'); SELECT 'intx-' || 'inserted';" >&7
it_wait_for 10 out_has intx intx-inserted || it_failed "the open transaction could not INSERT"
assert_eq "yes" "$(alive && echo yes || echo no)" "pgdual still runs before the COMMIT"
echo "COMMIT;" >&7
it_wait_for 10 out_has intx '^COMMIT$' || it_failed "the COMMIT did not answer"
proxy_exit 15
t1=$(now_ms)
assert_eq "0" "$STATUS" "pgdual exits 0 once the transaction is over"
assert_match "$((t1 - t0))" '^[0-9]+$' "drain time measured"
if ((t1 - t0 < 20000)); then
    it_pass "pgdual exited before shutdown_timeout_ms ($((t1 - t0)) ms)"
else
    it_failed "pgdual waited for the timeout ($((t1 - t0)) ms) instead of the commit"
fi
# The session was closed at its transaction boundary: the next statement meets the FATAL.
echo "SELECT 'intx-' || 'after';" >&7
exec 7>&-
{ wait "$intx_pid"; } 2>/dev/null || true
assert_contains "$(cat "$IT_TMP/intx.out")" "pgdual is shutting down" \
    "after its COMMIT the drained session got FATAL 57P01"
assert_not_contains "$(cat "$IT_TMP/intx.out")" "intx-after" "no statement ran after the COMMIT"
assert_eq "after-term,before-term" \
    "$(psql_old "$DB" -tA -c "SELECT string_agg(v, ',' ORDER BY v) FROM d")" \
    "both rows of the drained transaction are on old"
if it_mirrors; then
    assert_eq "after-term,before-term" \
        "$(psql_new "$DB" -tA -c "SELECT string_agg(v, ',' ORDER BY v) FROM d")" \
        "both rows of the drained transaction are on new"
fi
assert_contains "$(cat "$PROXY_LOG")" "received SIGTERM: draining" "the log says it drains"

# --- shutdown_timeout_ms closes a transaction that does not end ------------------------------------
it_proxy_start pgdual.shutdown_timeout_ms=1500
session stuck
stuck_pid=$!
exec 7>"$IT_TMP/stuck.in"
echo "BEGIN; INSERT INTO d VALUES ('never-committed'); SELECT 'stuck-' || 'ready';" >&7
it_wait_for 10 out_has stuck stuck-ready || it_fail "stuck session did not start"
t0=$(now_ms)
kill -TERM "$PROXY_PID"
proxy_exit 10
t1=$(now_ms)
assert_eq "0" "$STATUS" "pgdual exits 0 after shutdown_timeout_ms"
if ((t1 - t0 >= 1400 && t1 - t0 < 8000)); then
    it_pass "it waited for shutdown_timeout_ms (1500) and not much longer ($((t1 - t0)) ms)"
else
    it_failed "exit after $((t1 - t0)) ms, want about 1500"
fi
echo "COMMIT;" >&7
exec 7>&-
{ wait "$stuck_pid"; } 2>/dev/null || true
assert_contains "$(cat "$IT_TMP/stuck.out")" "pgdual is shutting down" "the stuck session got the FATAL"
if it_wait_for 5 no_backend stuck; then
    it_pass "the stuck session's backend on old is gone"
else
    it_failed "the stuck session's backend on old is still there"
fi
assert_eq "0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM d WHERE v = 'never-committed'")" \
    "the unfinished transaction rolled back on old"

# --- SIGINT stops at once, even with a transaction open -------------------------------------------
it_proxy_start pgdual.shutdown_timeout_ms=20000
session cut
cut_pid=$!
exec 7>"$IT_TMP/cut.in"
echo "BEGIN; INSERT INTO d VALUES ('sigint'); SELECT 'cut-' || 'ready';" >&7
it_wait_for 10 out_has cut cut-ready || it_fail "cut session did not start"
t0=$(now_ms)
kill -INT "$PROXY_PID"
proxy_exit 10
t1=$(now_ms)
assert_eq "0" "$STATUS" "pgdual exits 0 on SIGINT"
if ((t1 - t0 < 3000)); then
    it_pass "SIGINT does not wait for the transaction ($((t1 - t0)) ms)"
else
    it_failed "SIGINT took $((t1 - t0)) ms"
fi
exec 7>&-
{ wait "$cut_pid"; } 2>/dev/null || true
assert_eq "0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM d WHERE v = 'sigint'")" \
    "the transaction cut by SIGINT rolled back"
