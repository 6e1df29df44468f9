#!/usr/bin/env bash
# tests/integration/it_pin_cte_ext2.sh: review findings on data-modifying WITH queries pinned
# through the extended protocol (issue 12), each driven message by message (rawpg.py):
#  1. pgdual's temporary table gone (DISCARD TEMP, a rolled-back block it was made in) while the
#     session holds a rewritten prepared statement, then a batch whose Bind comes after something
#     already reached the primary: the client gets old's answers, never a hang or an error of
#     pgdual's;
#  2. a parameter whose type the pinned WITH write inferred, used again outside it;
#  3. rows left in pgdual's table on the secondary by a verbatim run before a primary switch and
#     back;
#  4. a failed batch with a savepoint rolled back: the verbatim WITH write is counted.
# shellcheck disable=SC2016 # $n in single quotes are SQL parameters
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_cte_ext2
RAWPG="$IT_HARNESS_DIR/rawpg.py"
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
same() {
    local sql="SELECT md5(coalesce(string_agg(w_::text, ',' ORDER BY w_::text), '')) FROM $1 w_"
    assert_eq "$(psql_old "$DB" -tA -c "$sql")" "$(psql_new "$DB" -tA -c "$sql")" "$2"
}
# raw SCRIPT: rawpg.py through pgdual.
raw() { timeout 60 python3 "$RAWPG" "$PROXY_PORT" "$DB" "$1"; }
psql_proxy "$DB" -q -c "
CREATE TABLE t (id serial PRIMARY KEY, n int, at timestamptz);
CREATE TABLE log (id serial PRIMARY KEY, m text);
CREATE TABLE lg (m text);
INSERT INTO t (n, at) SELECT g, '2020-01-01' FROM generate_series(1, 10) g;"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the WITH writes"

INS='WITH w AS (INSERT INTO t (n) VALUES ($1) RETURNING id) SELECT id FROM w'

# ---- 1. pgdual's table gone, the Bind mid-batch ----------------------------------------------
# DISCARD TEMP drops it; then a batch whose Bind follows a Flush (the SELECT 1 already ran on the
# primary: no catalog round trip can go before the Bind). pgdual makes the table again right
# after the DISCARD: the Execute is pinned as usual.
it_status_mark
out=$(raw "PN s $INS ;; S ;; SEND ;; WAIT Z ;; Q DISCARD TEMP ;; SEND ;; WAIT Z ;; \
P SELECT 1 ;; B ;; E ;; H ;; SEND ;; WAIT C ;; BN s 101 ;; E ;; S ;; SEND ;; WAIT Z ;; \
BN s 102 ;; E ;; S ;; SEND ;; WAIT Z") || it_failed "finding 1 (DISCARD TEMP): $out"
assert_eq "Z I" "$(tail -n1 <<<"$out")" "DISCARD TEMP, then a Bind mid-batch: the client gets its ReadyForQuery"
assert_not_contains "$out" "E " "...and no error old alone would not give"
assert_eq "3" "$(grep -c '^C SELECT 1' <<<"$out")" "every Execute answered"
# The same after a transaction block the table was first made in is rolled back.
out=$(raw "Q BEGIN ;; SEND ;; WAIT Z ;; PN s $INS ;; S ;; SEND ;; WAIT Z ;; Q ROLLBACK ;; SEND ;; WAIT Z ;; \
P SELECT 1 ;; B ;; E ;; H ;; SEND ;; WAIT C ;; BN s 103 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "finding 1 (ROLLBACK): $out"
assert_eq "Z I" "$(tail -n1 <<<"$out")" "a rolled-back block the table was made in, then a Bind mid-batch: ReadyForQuery"
assert_not_contains "$out" "E " "...and no error"
assert_delta nondeterministic_writes_total -eq 0 "nothing counted"
assert_delta pinned_writes_total -eq 3 "the three WITH INSERTs pinned"
assert_eq "in_sync" "$(it_status secondary_state)" "new stays in_sync"
same t "t identical on old and new"

# ---- 1b. only the outer statement pinned: pgdual's table is not needed --------------------------
# The WITH INSERT into lg makes up nothing (no slot, nothing recorded); log's serial id is pinned
# from the outer statement's own RETURNING. After DISCARD TEMP its Execute stays pinned.
OUTER='WITH w AS (INSERT INTO lg (m) VALUES ($1) RETURNING m) INSERT INTO log (m) SELECT m FROM w'
it_status_mark
out=$(raw "PN ou $OUTER ;; S ;; SEND ;; WAIT Z ;; Q DISCARD TEMP ;; SEND ;; WAIT Z ;; \
P SELECT 1 ;; B ;; E ;; H ;; SEND ;; WAIT C ;; BN ou x1 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "finding 1b: $out"
assert_not_contains "$out" "E " "outer statement pinned alone, after DISCARD TEMP: no error"
assert_delta nondeterministic_writes_total -eq 0 "...not counted (pgdual's table not needed)"
assert_delta pinned_writes_total -eq 1 "...pinned"
same log "log identical on old and new"
psql_proxy "$DB" -q -c "DELETE FROM lg"

# ---- 3. rows a verbatim run left in pgdual's table, then back to that primary -----------------
# Prepared (rewritten) on old; after SET primary = new its Execute goes verbatim (counted) and old,
# the secondary, runs its rewritten copy, recording a row into its pgdual_pin_rows that nobody
# reads back. Repaired by hand as a reconciliation would (new's row to old), in_sync again, back
# to old: the next Execute must read back its own row only.
UPD='WITH u AS (UPDATE t SET at = clock_timestamp() WHERE id = $1 RETURNING id) SELECT count(*) FROM u'
timeout 120 python3 "$RAWPG" "$PROXY_PORT" "$DB" "PN u $UPD ;; S ;; SEND ;; WAIT Z ;; \
BN u 1 ;; E ;; S ;; SEND ;; WAIT Z ;; PAUSE $IT_TMP/go1 ;; BN u 2 ;; E ;; S ;; SEND ;; WAIT Z ;; \
PAUSE $IT_TMP/go2 ;; DETAIL ;; BN u 3 ;; E ;; S ;; SEND ;; WAIT Z" >"$IT_TMP/sw.out" 2>&1 &
sw_pid=$!
paused() { [[ $(grep -c '^PAUSE$' "$IT_TMP/sw.out") -ge $1 ]]; }
it_wait_for 20 paused 1 || it_failed "the session did not reach its first pause: $(cat "$IT_TMP/sw.out")"
same t "t identical after the first pinned Execute"
assert_ok "SET primary = new" -- psql_admin "SET primary = new"
it_status_mark
touch "$IT_TMP/go1"
it_wait_for 20 paused 2 || it_failed "the session did not reach its second pause: $(cat "$IT_TMP/sw.out")"
assert_delta nondeterministic_writes_total -ge 1 "the Execute of a statement prepared before the switch: counted"
psql_old "$DB" -q -c "UPDATE t SET at = '$(psql_new "$DB" -tA -c "SELECT at FROM t WHERE id = 2")' WHERE id = 2"
same t "t repaired (new's row 2 to old)"
pass=$(psql_admin "RECONCILE START" | cut -d'|' -f1)
assert_ok "RECONCILE DONE" -- psql_admin "RECONCILE DONE $pass"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync again"
assert_ok "SET primary = old" -- psql_admin "SET primary = old"
it_status_mark
touch "$IT_TMP/go2"
wait "$sw_pid" || it_failed "the switching session failed: $(cat "$IT_TMP/sw.out")"
assert_contains "$(cat "$IT_TMP/sw.out")" "D 1" "the client's count(*) after switching back: 1"
assert_delta nondeterministic_writes_total -eq 0 "the Execute after switching back: pinned"
assert_delta divergences_total -eq 0 "...and no divergence"
assert_eq "in_sync" "$(it_status secondary_state)" "new stays in_sync"
same t "t identical on old and new (no stale row read back)"

# ---- 2. a parameter whose type the pinned WITH write inferred, used again outside it ----------
# Without declared types: $1 is int on the primary (t.n), stored as '7' into lg's text column, but the secondary's text no longer has
# the WITH INSERT that fixed it. Used only outside the pinned write, the same text infers the
# same type on both sides: that one stays pinned.
OUTSIDE='WITH w AS (INSERT INTO t (n) VALUES (5) RETURNING id) INSERT INTO log (m) SELECT $1 FROM w'
BOTH='WITH w AS (INSERT INTO t (n) VALUES ($1) RETURNING id) INSERT INTO lg (m) SELECT $1 FROM w'
it_status_mark
out=$(raw "PN o $OUTSIDE ;; S ;; SEND ;; WAIT Z ;; BN o 008 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "finding 2 (outside): $out"
assert_not_contains "$out" "E " "a parameter used outside the pinned write only: no error"
assert_delta nondeterministic_writes_total -eq 0 "...pinned, not counted"
same log "log identical on old and new ('008' on both)"
out=$(raw "PN b $BOTH ;; S ;; SEND ;; WAIT Z ;; BN b 007 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "finding 2 (both): $out"
assert_not_contains "$out" "E " "a parameter typed by the pinned write and used again: no error"
assert_eq "7" "$(psql_old "$DB" -tA -c "SELECT m FROM lg")" "old stored the parameter as an int (7)"
if [[ "$(psql_new "$DB" -tA -c "SELECT m FROM lg")" == 7 ]]; then
    it_pass "new stored 7 too"
else
    assert_delta nondeterministic_writes_total -ge 1 "new differs (verbatim there): counted, never silent"
fi

# ---- 4. an error after a WITH write in a block, a savepoint rolled back to --------------------
# The read-back fails in the failed block, the WITH UPDATE goes verbatim to new (its own
# clock_timestamp()); ROLLBACK TO a keeps it on both sides: counted, never silent.
it_status_mark
out=$(raw "PN u4 $UPD ;; S ;; SEND ;; WAIT Z ;; Q BEGIN ;; SEND ;; WAIT Z ;; \
BN u4 3 ;; E ;; P SAVEPOINT a ;; B ;; E ;; P SELECT 1/0 ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; \
Q ROLLBACK TO a ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z") || it_failed "finding 4: $out"
assert_contains "$out" "E 22012" "the batch fails at 1/0"
assert_eq "Z I" "$(tail -n1 <<<"$out")" "COMMIT ends the block"
if [[ "$(psql_old "$DB" -tA -c "SELECT at FROM t WHERE id = 3")" == \
    "$(psql_new "$DB" -tA -c "SELECT at FROM t WHERE id = 3")" ]]; then
    it_pass "row 3 the same on both sides"
else
    assert_delta nondeterministic_writes_total -ge 1 "row 3 differs (new ran the WITH UPDATE verbatim): counted"
fi

# ---- 1a. the owner's reply released while its read-back runs: never held for good --------------
# A Bind that fails after a Flush whose answers the client already has: the secondary skips the
# unit (released at once), while the read-back of the Execute's slots still runs.
out=$(raw "PN s $INS ;; S ;; SEND ;; WAIT Z ;; \
P SELECT 1 ;; B ;; E ;; H ;; SEND ;; WAIT C ;; BN s abc ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "finding 1a: $out"
assert_contains "$out" "E 22P02" "a Bind failing after a Flush: the client gets old's error"
assert_eq "Z I" "$(tail -n1 <<<"$out")" "...and its ReadyForQuery"

it_proxy_stop
