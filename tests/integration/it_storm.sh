#!/usr/bin/env bash
# tests/integration/it_storm.sh: a connection storm against a pgdual short of file descriptors
# (issue 14 item 6). pgdual's RLIMIT_NOFILE is lowered to 256 (prlimit), then 5,000 connection
# attempts come as fast as a client can open them, 1,000 of them held open and silent. accept
# fails with EMFILE: pgdual must rest its listener (accept_backoffs_total) rather than spin on it
# - its CPU time (utime + stime, /proc/PID/stat) over the storm stays under 10% of one core, and
# the shortage is logged a few times, not once per failed accept -,
# cut the silent clients after client_login_timeout_ms (freeing descriptors for the next ones),
# serve a psql client during the storm and after it, and not crash.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "pgdual's accept loop is tested (PGDUAL_TEST_DIRECT=1)"
command -v prlimit >/dev/null || it_skip "prlimit (util-linux) is missing"
ulimit -n 8192 2>/dev/null || ulimit -n 4096 || it_skip "cannot raise this shell's descriptor limit"

CLIENT="python3 $(dirname "$0")/it_memclient.py"
DB=it_storm
it_createdb "$DB"
it_proxy_start workers=1 client_login_timeout_ms=1500 max_client_conn=2000
prlimit --pid "$PROXY_PID" --nofile=256:256 || it_fail "prlimit on pgdual"
assert_eq 1 "$(psql_proxy "$DB" -tA -c "SELECT 1")" "served before the storm"
it_status_mark

ticks() { awk '{ print $14 + $15 }' "/proc/$PROXY_PID/stat"; }
hz=$(getconf CLK_TCK)
GO="$IT_TMP/go"
t0=$(it_now_ms)
c0=$(ticks)
GOFILE="$GO" $CLIENT storm "$PROXY_PORT" 5000 1000 20 >"$IT_TMP/storm.out" &
storm=$!
opened() { grep -q '^opened=' "$IT_TMP/storm.out"; }
it_wait_for 30 opened || it_fail "the storm client did not finish opening"
it_log "$(head -n1 "$IT_TMP/storm.out")"
assert_match "$(head -n1 "$IT_TMP/storm.out")" '^opened=5000 failed=0 held=1000$' "5,000 attempts, 1,000 held open and silent"
# During the storm (the held ones are cut after 1.5 s, which frees descriptors): a new client
# waits in the backlog behind the silent ones, at most a few cuts long.
during() { [[ "$(timeout 20 psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -tA -c "SELECT 2" 2>&1)" == 2 ]]; }
if it_wait_for 30 during; then it_pass "a psql client is served during the storm"; else it_failed "no psql client was served during the storm"; fi
touch "$GO"
wait "$storm" || it_failed "the storm client failed"
cut=$(sed -n 's/^cut=//p' "$IT_TMP/storm.out")
assert_eq 1000 "$cut" "every silent client was cut (client_login_timeout_ms)"
c1=$(ticks)
t1=$(it_now_ms)
cpu=$(((c1 - c0) * 1000 * 100 / hz / (t1 - t0)))
it_log "pgdual used $((c1 - c0)) ticks in $((t1 - t0)) ms: ${cpu}% of one core"
# Measured: about 1% with the back-off; spinning on EMFILE took 14% on a shared 2-core host
# (211,582 failed accepts, each logged), so the bound is 10%, not the issue's "far from 100%".
if ((cpu < 10)); then it_pass "no busy loop: ${cpu}% of one core over the storm"; else it_failed "pgdual used ${cpu}% of one core during the storm"; fi
kill -0 "$PROXY_PID" 2>/dev/null || it_fail "pgdual died in the storm"
assert_eq 3 "$(psql_proxy "$DB" -tA -c "SELECT 3")" "served after the storm"
assert_delta accept_backoffs_total -ge 1 "accept ran out of descriptors and rested"
# (Attempts closed before their handshake completed, the backlog being full, never reach it.)
assert_delta clients_total -ge 1000 "every held connection became a session in the end"
# The count max_client_conn is checked against leaks nothing: only the admin session is left.
idle() { [[ "$(it_status sessions_active)" == 1 ]]; }
if it_wait_for 10 idle; then it_pass "sessions_active back to 1 (the admin console)"; else it_failed "sessions_active stays $(it_status sessions_active)"; fi
assert_contains "$(cat "$PROXY_LOG")" "the listener rests" "the log says so"
n=$(grep -c "accept failed" "$PROXY_LOG" || true)
if ((n >= 1 && n <= 20)); then it_pass "the shortage is logged $n time(s), not once per attempt"; else it_failed "the shortage is logged $n times"; fi
it_proxy_stop
