#!/usr/bin/env bash
# tests/integration/it_promote.sh: SET primary = new reaches open sessions at their next
# statement boundary (new answers, writes still reach both); a transaction in flight finishes on
# the primary it started on; ROLLBACK CUTOVER brings sessions back to old the same way.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "promotion exists only in pgdual (PGDUAL_TEST_DIRECT=1)"
it_mirrors || it_skip "promotion needs both backends (PGDUAL_MIRRORS=0)"

DB=it_promote
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
assert_ok "create table" -- psql_proxy "$DB" -c "CREATE TABLE p (id int PRIMARY KEY, v text)" \
    -c "INSERT INTO p VALUES (1, 'same')"
# The row differs on purpose: who answers shows which backend is the primary.
psql_old "$DB" -c "UPDATE p SET v = 'old' WHERE id = 1" >/dev/null
psql_new "$DB" -c "UPDATE p SET v = 'new' WHERE id = 1" >/dev/null

# A session is a psql reading commands from a FIFO; each answer line is tagged.
mkfifo "$IT_TMP/s.in" "$IT_TMP/t.in"
psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -tA \
    -f "$IT_TMP/s.in" >"$IT_TMP/s.out" 2>&1 &
s_pid=$!
exec 7>"$IT_TMP/s.in"
psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -tA \
    -f "$IT_TMP/t.in" >"$IT_TMP/t.out" 2>&1 &
t_pid=$!
exec 8>"$IT_TMP/t.in"
out_has() { grep -qx -- "$2" "$IT_TMP/$1.out"; }
# ask SESSION-FD SESSION TAG: the tagged value of row 1 as the session sees it.
ask() {
    echo "SELECT '$3:' || v FROM p WHERE id = 1;" >&"$1"
}

ask 7 s s1
it_wait_for 10 out_has s "s1:old" || it_failed "before promotion the session reads old: $(cat "$IT_TMP/s.out")"
echo "BEGIN;" >&8
ask 8 t t1
it_wait_for 10 out_has t "t1:old" || it_failed "the transaction starts on old"

# The ladder's step 2: reads are all on new already (step 1), then new becomes the primary.
assert_ok "SET read_new_percent = 100" -- psql_admin "SET read_new_percent = 100"
assert_ok "SET primary = new" -- psql_admin "SET primary = new"
sleep 0.3 # the dial reaches the workers through their mailboxes
# t's transaction still runs on old: s must not start on new meanwhile (a session writing
# new-first and one writing old-first could lock each other across the two servers).
ask 7 s s2
sleep 1.5
if out_has s "s2:new" || out_has s "s2:old"; then
    it_failed "s answered while a transaction was open on old: $(cat "$IT_TMP/s.out")"
else
    it_pass "an open session waits to switch while a transaction runs on the old primary"
fi
ask 8 t t2
it_wait_for 10 out_has t "t2:old" && it_pass "a transaction in flight finishes on old" ||
    it_failed "transaction in flight after promotion: $(cat "$IT_TMP/t.out")"
echo "COMMIT;" >&8
it_wait_for 10 out_has s "s2:new" && it_pass "once it committed, the open session follows the promotion" ||
    it_failed "open session after SET primary = new: $(cat "$IT_TMP/s.out")"
ask 8 t t3
it_wait_for 10 out_has t "t3:new" && it_pass "after its COMMIT the session reads new" ||
    it_failed "after COMMIT: $(cat "$IT_TMP/t.out")"
assert_eq "new" "$(psql_proxy "$DB" -tA -c "SELECT v FROM p WHERE id = 1")" "a new session reads new"

echo "INSERT INTO p VALUES (2, 'written after promotion');" >&7
it_wait_for 10 out_has s "INSERT 0 1" || it_failed "insert after promotion"
assert_eq "written after promotion" "$(psql_new "$DB" -tA -c "SELECT v FROM p WHERE id = 2")" "the write is on new"
assert_eq "written after promotion" "$(psql_old "$DB" -tA -c "SELECT v FROM p WHERE id = 2")" \
    "and mirrored to old (the rollback feed)"

assert_ok "ROLLBACK CUTOVER" -- psql_admin "ROLLBACK CUTOVER"
sleep 0.3
ask 7 s s3
it_wait_for 10 out_has s "s3:old" && it_pass "after ROLLBACK CUTOVER the open session reads old" ||
    it_failed "after rollback: $(cat "$IT_TMP/s.out")"

# PAUSE holds the next statement of every session at its transaction boundary; RESUME lets it go.
echo "BEGIN;" >&8
ask 8 t t4
it_wait_for 10 out_has t "t4:old" || it_failed "transaction before PAUSE"
assert_ok "PAUSE" -- psql_admin "PAUSE"
assert_eq "on" "$(psql_admin "SHOW STATUS" | awk -F'|' '$1 == "paused" { print $2 }')" "SHOW STATUS paused"
ask 8 t t5
it_wait_for 10 out_has t "t5:old" && it_pass "a transaction in flight goes on while paused" ||
    it_failed "in-flight transaction under PAUSE: $(cat "$IT_TMP/t.out")"
echo "COMMIT;" >&8
ask 7 s s4
sleep 1
if out_has s "s4:old"; then it_failed "a new statement ran while paused"; else it_pass "a new statement waits while paused"; fi
assert_ok "RESUME" -- psql_admin "RESUME"
it_wait_for 10 out_has s "s4:old" && it_pass "RESUME releases the waiting statement" ||
    it_failed "after RESUME: $(cat "$IT_TMP/s.out")"

exec 7>&- 8>&-
kill "$s_pid" "$t_pid" 2>/dev/null || true
wait "$s_pid" "$t_pid" 2>/dev/null || true # not a bare wait: pgdual is a background job too
it_proxy_stop
