#!/usr/bin/env bash
# tests/integration/it_relay.sh: relay mode (mirror = off, every read on the primary, no shadow,
# issue 15 item 2) classifies no plain statement: a pgbench -S -M simple burst leaves
# classifications_total where it was, a statement with a call is still classified. Turning mirror
# on and the read dial to 100 makes the next statement classified, mirrored (rows on both sides)
# and routed (reads served by new). Named statements prepared in relay mode: a session that
# logged in then gets its secondary back with them and its Execute writes both sides; a session
# that kept its secondary while mirror was off still sends the Execute of a statement new never
# got, and the comparison says so (a divergence), as before relay mode skipped classification.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"
PQSCRIPT=${PGDUAL_PQSCRIPT:-$(dirname "$PGDUAL_BIN")/tests/pqscript}
[[ -x "$PQSCRIPT" ]] || it_fail "pqscript not found at $PQSCRIPT (cmake --build build)"

DB=it_relay
it_createdb "$DB"
PIDS=()
trap 'rc=$?; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; (exit $rc); it_cleanup' EXIT
it_proxy_start cutover.compare_percent=0 pgdual.secondary_retry_ms=200

bench() {
    pgbench -h 127.0.0.1 -p "$PROXY_PORT" -U postgres "$@" "$DB"
}
bench -i -s 1 -q >"$IT_TMP/init.out" 2>&1 || it_fail "pgbench -i: $(tail -n 5 "$IT_TMP/init.out")"
psql_proxy "$DB" -q -c "CREATE TABLE rt (id int PRIMARY KEY, v text)"

# pqscript session NAME, fed from a FIFO; ps_wait NAME N waits for its N-th answer.
ps_open() {
    local fd
    mkfifo "$IT_TMP/$1.in"
    "$PQSCRIPT" "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB" <"$IT_TMP/$1.in" \
        >"$IT_TMP/$1.out" 2>&1 &
    PIDS+=($!)
    exec {fd}>"$IT_TMP/$1.in"
    eval "FD_$1=$fd"
}
ps_send() {
    local fd_var="FD_$1"
    printf '%s\n' "$2" >&"${!fd_var}"
}
ps_has() { (($(wc -l <"$IT_TMP/$1.out") >= $2)); }
ps_line() {
    it_wait_for 20 ps_has "$1" "$2" || it_fail "pqscript $1 did not answer: $(cat "$IT_TMP/$1.out")"
    sed -n "$2p" "$IT_TMP/$1.out"
}

# Session B logs in with both backends (mirror on).
ps_open b
ps_send b $'Q\tSELECT 1'
assert_contains "$(ps_line b 1)" "TUPLES_OK" "session B is up"

# --- relay mode: a simple-protocol burst is not classified --------------------------------------
psql_admin "SET mirror = off FORCE" >/dev/null || it_fail "SET mirror = off FORCE"
it_dials
it_status_mark
bench -S -M simple -n -c 2 -j 2 -t 500 >"$IT_TMP/s.out" 2>&1 ||
    it_fail "pgbench -S: $(tail -n 5 "$IT_TMP/s.out")"
assert_contains "$(cat "$IT_TMP/s.out")" "number of transactions actually processed: 1000/1000" \
    "pgbench -S -M simple ran through pgdual in relay mode"
# pgbench's own setup query (SELECT count(*) FROM pgbench_branches, a call) is classified.
assert_delta classifications_total -le 2 "relay mode: the burst's 1000 statements classified nothing"
assert_delta statements_total -ge 1000 "relay mode: the burst's statements counted"
assert_delta reads_served_old -ge 1000 "relay mode: plain SELECTs still count as reads served by old"
assert_eq "in_sync" "$(it_status secondary_state)" "reads in relay mode leave new in_sync"
psql_proxy "$DB" -tA -c "SELECT count(*) FROM pgbench_branches" >/dev/null
assert_delta classifications_total -ge 1 "relay mode: a statement with a call is classified"

# --- mirror on, reads to new: the next statement is classified, mirrored and routed -------------
psql_admin "SET mirror = on" >/dev/null || it_fail "SET mirror = on"
it_dials read_new_percent=100
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO rt VALUES (1, 'after mirror on')"
assert_delta classifications_total -ge 1 "mirror on: the INSERT is classified"
assert_delta writes_mirrored -ge 1 "mirror on: the INSERT is mirrored"
assert_eq "after mirror on" "$(psql_new "$DB" -tA -c "SELECT v FROM rt WHERE id = 1")" \
    "the write after mirror on is on new"
assert_eq "after mirror on" "$(psql_old "$DB" -tA -c "SELECT v FROM rt WHERE id = 1")" \
    "...and on old"
it_status_mark
for i in 1 2 3; do
    psql_proxy "$DB" -tA -c "SELECT abalance FROM pgbench_accounts WHERE aid = $i" >/dev/null
done
assert_delta reads_served_new -eq 3 "read_new_percent = 100: plain SELECTs served by new"
assert_delta classifications_total -ge 3 "...each classified"
assert_eq "in_sync" "$(it_status secondary_state)" "new still in_sync"
it_dials read_new_percent=0

# --- named statements prepared in relay mode --------------------------------------------------
psql_admin "SET mirror = off FORCE" >/dev/null || it_fail "SET mirror = off FORCE"
it_dials
ps_open a # logs in with the primary only
ps_send a $'P\tw1\tINSERT INTO rt VALUES ($1, $2)'
assert_contains "$(ps_line a 1)" "COMMAND_OK" "A prepares w1 in relay mode"
ps_send a $'E\tw1\t10\trelay'
assert_contains "$(ps_line a 2)" "COMMAND_OK" "A inserts through w1 in relay mode"
ps_send b $'P\tw2\tINSERT INTO rt VALUES ($1, $2)'
assert_contains "$(ps_line b 2)" "COMMAND_OK" "B prepares w2 in relay mode"
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO rt VALUES (11, 'relay simple')"
assert_delta classifications_total -eq 0 "relay mode: a plain INSERT is not classified"
assert_eq "0" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM rt WHERE id IN (10, 11)")" \
    "relay-mode writes are not on new"
assert_eq "2" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM rt WHERE id IN (10, 11)")" \
    "...but on old"
assert_eq "diverged" "$(it_status secondary_state)" "a write skipped under mirror = off: diverged"

psql_admin "SET mirror = on" >/dev/null || it_fail "SET mirror = on"
it_dials
it_status_mark
reconnected() { [[ "$(it_status_delta secondary_reconnects_total)" -ge 1 ]]; }
# A's sweep runs at a unit boundary: a statement now and then gives it one.
poke_a() {
    ps_send a $'Q\tSELECT 1'
    reconnected
}
it_wait_for 20 poke_a || it_fail "A did not get its secondary back after mirror on"
it_pass "A (logged in in relay mode) got its secondary back"
n=$(wc -l <"$IT_TMP/a.out")
ps_send a $'E\tw1\t20\tafter'
assert_contains "$(ps_line a $((n + 1)))" "COMMAND_OK" "A's w1 runs after mirror on"
assert_eq "after" "$(psql_new "$DB" -tA -c "SELECT v FROM rt WHERE id = 20")" \
    "w1, prepared in relay mode, was re-created on new: its Execute's row is there"
it_status_mark
ps_send b $'E\tw2\t21\tb'
assert_contains "$(ps_line b 3)" "COMMAND_OK" "B's w2 (prepared while mirror was off) answers from old"
assert_delta divergences_total -ge 1 "B's Execute of a statement new never got is a divergence" 10
assert_eq "0" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM rt WHERE id = 21")" \
    "B's row did not reach new"

it_proxy_stop
