#!/usr/bin/env bash
# tests/integration/it_cancel_target.sh: a client's cancel reaches only the backends running its
# current statement. In lockstep with commit_wait = primary the client has its answer to a write
# while new still applies it (held back here by a row lock taken directly on new); the client's
# next statement, a slow read on old, is cancelled: the read stops, the earlier write still lands
# on new once the lock goes, and secondary_state stays in_sync. A cancel of a wrapped write whose
# answer waits for new hits neither side; in parallel mode a cancel stops both.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_cancel_target
it_createdb "$DB"
it_proxy_start cutover.commit_wait=primary
psql_proxy "$DB" -q -c "CREATE TABLE ct (id int PRIMARY KEY, v int)" -c "INSERT INTO ct VALUES (1, 0)"

count_on() { # PORT WHERE
    psql -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -tA -c \
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND $2"
}
write_waits_on_new() { [[ "$(count_on "$NEW_PORT" "wait_event_type = 'Lock' AND query LIKE 'UPDATE ct%'")" == 1 ]]; }
sleeping_on_old() { [[ "$(count_on "$OLD_PORT" "state = 'active' AND query LIKE '%pg_sleep(30)%'")" == 1 ]]; }
v_on() { "$1" "$DB" -tA -c "SELECT v FROM ct WHERE id = 1"; }

# The lock on new, held by a psql fed from a FIFO.
mkfifo "$IT_TMP/locker.in"
psql -X -h 127.0.0.1 -p "$NEW_PORT" -U postgres -d "$DB" -tA -f "$IT_TMP/locker.in" \
    >"$IT_TMP/locker.out" 2>&1 &
locker=$!
exec 9>"$IT_TMP/locker.in"
echo "BEGIN; SELECT 'locked-' || v FROM ct WHERE id = 1 FOR UPDATE;" >&9
it_wait_for 10 grep -q locked-0 "$IT_TMP/locker.out" || it_fail "the lock on new was not taken"

# psql turns SIGINT into a CancelRequest with the BackendKeyData pgdual gave it.
psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" \
    -c "UPDATE ct SET v = 1 WHERE id = 1" -c "SELECT pg_sleep(30)" >"$IT_TMP/client.out" 2>&1 &
client=$!
it_wait_for 10 write_waits_on_new || it_fail "the UPDATE never waited on new"
it_wait_for 10 sleeping_on_old || it_fail "the slow read never ran on old: $(cat "$IT_TMP/client.out")"
assert_eq "1" "$(v_on psql_old)" "old has the write the client got acknowledged"
kill -INT "$client"
it_wait_for 10 eval '! kill -0 '"$client"' 2>/dev/null' || it_failed "the client did not finish after its cancel"
wait "$client" 2>/dev/null || true
assert_contains "$(cat "$IT_TMP/client.out")" "canceling statement due to user request" \
    "the slow read was cancelled"
if it_wait_for 5 eval '! sleeping_on_old'; then
    it_pass "pg_sleep no longer runs on old"
else
    it_failed "pg_sleep still runs on old"
fi
if write_waits_on_new; then
    it_pass "the earlier write still waits on new: the cancel did not reach it"
else
    it_failed "the write on new is gone: the client's cancel hit it"
fi
echo "COMMIT;" >&9
exec 9>&-
wait "$locker" 2>/dev/null || true
if it_wait_for 10 eval '[[ "$(v_on psql_new)" == 1 ]]'; then
    it_pass "the write landed on new once the lock went"
else
    it_failed "new: v = $(v_on psql_new), old: v = $(v_on psql_old)"
fi
assert_eq "in_sync" "$(it_status secondary_state)" "secondary_state stays in_sync"

# commit_wait = both: the autocommit UPDATE runs on old inside pgdual's BEGIN ... COMMIT and its
# answer is held until new applied it. The client's cancel (psql's ^C while it waits) reaches
# neither: old runs nothing of the client's, new an earlier unit; pgdual's COMMIT follows once
# new is done, and the client gets UPDATE 1.
psql_admin "SET commit_wait = both" >/dev/null
mkfifo "$IT_TMP/locker2.in"
psql -X -h 127.0.0.1 -p "$NEW_PORT" -U postgres -d "$DB" -tA -f "$IT_TMP/locker2.in" \
    >"$IT_TMP/locker2.out" 2>&1 &
locker=$!
exec 9>"$IT_TMP/locker2.in"
echo "BEGIN; SELECT 'again-' || 'locked' FROM ct WHERE id = 1 FOR UPDATE;" >&9
it_wait_for 10 grep -q again-locked "$IT_TMP/locker2.out" || it_fail "the second lock on new was not taken"
div0=$(it_status divergences_total)
psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -c "UPDATE ct SET v = 2 WHERE id = 1" \
    >"$IT_TMP/wrapped.out" 2>&1 &
client=$!
it_wait_for 10 write_waits_on_new || it_fail "the wrapped UPDATE never waited on new"
kill -INT "$client"
it_wait_for 10 grep -q "Cancel request sent" "$IT_TMP/wrapped.out" || it_failed "psql sent no cancel"
sleep 0.5 # a cancel sent on would have reached new by now (the thread pool runs it at once)
if write_waits_on_new; then
    it_pass "the wrapped write still waits on new after the client's cancel"
else
    it_failed "the client's cancel hit the wrapped write on new"
fi
echo "COMMIT;" >&9
exec 9>&-
wait "$locker" 2>/dev/null || true
it_wait_for 10 eval '! kill -0 '"$client"' 2>/dev/null' || it_failed "the wrapped UPDATE never answered"
wait "$client" 2>/dev/null || true
assert_contains "$(cat "$IT_TMP/wrapped.out")" "UPDATE 1" "the client got its UPDATE's answer"
assert_eq "2|2" "$(v_on psql_old)|$(v_on psql_new)" "the wrapped write is on both sides"
assert_eq "$div0" "$(it_status divergences_total)" "no divergence"
assert_eq "in_sync" "$(it_status secondary_state)" "secondary_state still in_sync"

# The cancel still reaches the secondary when it runs the client's statement: in parallel mode
# a mirrored pg_sleep runs on both at once, and the cancel stops it on both.
psql_admin "SET mirror_order = parallel" >/dev/null
sleeping_on() { [[ "$(count_on "$1" "state = 'active' AND query LIKE '%pg_sleep(31)%'")" == 1 ]]; }
div0=$(it_status divergences_total)
psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -c "SELECT pg_sleep(31)" \
    >"$IT_TMP/parallel.out" 2>&1 &
client=$!
it_wait_for 10 sleeping_on "$OLD_PORT" || it_fail "pg_sleep never ran on old"
it_wait_for 10 sleeping_on "$NEW_PORT" || it_fail "pg_sleep never ran on new (is it mirrored?)"
kill -INT "$client"
it_wait_for 10 eval '! kill -0 '"$client"' 2>/dev/null' || it_failed "the client did not finish after its cancel"
wait "$client" 2>/dev/null || true
assert_contains "$(cat "$IT_TMP/parallel.out")" "canceling statement due to user request" \
    "parallel mode: the statement was cancelled"
for port in "$OLD_PORT" "$NEW_PORT"; do
    if it_wait_for 5 eval '! sleeping_on '"$port"; then
        it_pass "parallel mode: pg_sleep stopped on port $port"
    else
        it_failed "parallel mode: pg_sleep still runs on port $port"
    fi
done
assert_eq "$div0" "$(it_status divergences_total)" "both sides cancelled alike: no divergence"
it_proxy_stop
