#!/usr/bin/env bash
# tests/integration/it_pin_cte_ext2.sh: data-modifying WITH queries through the extended
# protocol, message by message (rawpg.py), issue 12. The client's Parse goes verbatim; a Bind
# whose Execute follows in the batch becomes pgdual's statement on the primary.
#  A. failing Binds (a bad parameter) and a failing Execute (a CHECK) of a pinned WITH statement,
#     in autocommit (wrapped) and in a block, pipelined Bind/Execute pairs in one Sync, a Describe
#     of the portal: the client gets byte for byte what old alone sends (the same script against a
#     copy on old), the session goes on, nothing is counted, the tables stay identical;
#  B. the first design's reviews (/work/briefs/rev12b_scripts): rows left in pgdual's table by a
#     block with a SAVEPOINT rolled back to (rev_s1), a parameter typed by the pinned write and
#     used again, DISCARD TEMP mid-batch and in its own batch (rev_a), pin_writes turned off
#     between Parse and Bind, user code after a pinned statement (rev_d), an error after a WITH
#     write with a savepoint rolled back to, a Bind whose Execute comes in a later batch, a portal
#     executed twice, pgdual's table dropped mid-batch by a trigger: every command under timeout,
#     no error old would not give (but the last: the server's 42P01 at the Bind), and either the
#     tables identical or the write counted.
# shellcheck disable=SC2016 # $n in single quotes are SQL parameters
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_cte_ext2
REF=${DB}_ref
RAWPG="$IT_HARNESS_DIR/rawpg.py"
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
same() { it_same "$DB" "$@"; }
# no_error OUT MSG: no ErrorResponse line in rawpg.py's output.
no_error() {
    if grep -q '^E ' <<<"$1"; then
        it_failed "$2: $(grep '^E ' <<<"$1")"
    else
        it_pass "$2"
    fi
}
# raw SCRIPT: rawpg.py through pgdual; ref SCRIPT: on the copy on old.
raw() { timeout 30 python3 "$RAWPG" "$PROXY_PORT" "$DB" "$1"; }
ref() { timeout 30 python3 "$RAWPG" "$OLD_PORT" "$REF" "$1"; }
SETUP_SQL="
CREATE TABLE t (id serial PRIMARY KEY, n int CHECK (n < 1000), at timestamptz);
CREATE TABLE t2 (id serial PRIMARY KEY, n int, at timestamptz);
CREATE TABLE lg (m text);
CREATE TABLE k (id int PRIMARY KEY, n int);
INSERT INTO k VALUES (1, 0);
CREATE FUNCTION two() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 2';
INSERT INTO t2 (n, at) SELECT g, '2020-01-01' FROM generate_series(1, 10) g;"
psql_proxy "$DB" -q -c "$SETUP_SQL"
psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF" -c "CREATE DATABASE $REF"
psql_old "$REF" -q -c "$SETUP_SQL"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the WITH writes"

INS='WITH w AS (INSERT INTO t (n) VALUES ($1) RETURNING id) SELECT id FROM w'
UPD='WITH u AS (UPDATE t2 SET at = clock_timestamp() WHERE id = $1 RETURNING id) SELECT count(*) FROM u'

# ---- A. failing Binds and Executes, pipelined pairs, a Describe: old's replies exactly ---------
A="DETAIL ;; PN s $INS ;; S ;; SEND ;; WAIT Z ;; BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; \
BN s x ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT 1 ;; SEND ;; WAIT Z ;; \
BN s 5000 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT 2 ;; SEND ;; WAIT Z ;; \
BN s 7 ;; E ;; BN s 8 ;; D P ;; E ;; S ;; SEND ;; WAIT Z ;; \
Q BEGIN ;; SEND ;; WAIT Z ;; BN s 2 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s x ;; E ;; S ;; SEND ;; WAIT Z ;; \
Q SELECT 3 ;; SEND ;; WAIT Z ;; Q ROLLBACK ;; SEND ;; WAIT Z ;; \
Q BEGIN ;; SEND ;; WAIT Z ;; BN s 3 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 4000 ;; E ;; S ;; SEND ;; WAIT Z ;; \
Q ROLLBACK ;; SEND ;; WAIT Z ;; \
Q BEGIN ;; SEND ;; WAIT Z ;; BN s 4 ;; E ;; BN s 5 ;; E ;; S ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z ;; \
P $INS ;; BN  6 ;; D P ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 9 ;; E ;; S ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$A") || it_failed "A via pgdual: $via"
old=$(ref "$A") || it_failed "A on old: $old"
[[ "$old" == "$via" ]] || diff <(echo "$old") <(echo "$via") >&2 || true
assert_eq "$old" "$via" "failing Binds and Executes, pipelined pairs, Describes: every message as old alone's"
assert_contains "$via" "E 22P02" "a bad parameter fails the Bind"
assert_contains "$via" "E 23514" "a CHECK fails the Execute"
assert_match "$via" $'E 22P02[^\n]*\nZ E' "in a block: ErrorResponse then Z E"
assert_match "$via" $'E 22P02[^\n]*\nZ I' "in autocommit (wrapped): ErrorResponse then Z I"
assert_delta nondeterministic_writes_total -eq 0 "pinned, nothing counted"
assert_delta pinned_writes_total -eq 9 "the 9 Executes that ran pinned (the rolled-back ones too)"
assert_eq "in_sync" "$(it_status secondary_state)" "new stays in_sync"
same t "t identical on old and new (every column)"

# ---- A2. a primary switch and back between Executes of a prepared WITH statement ---------------
# pgdual's own statement was parsed on old with the client's: after SET primary = new it is not
# there, so the Bind on new goes verbatim, counted; back on old (FORCE: new is diverged now) the
# statement and pgdual's table are the ones it was parsed with: pinned again.
raw "PN u $UPD ;; S ;; SEND ;; WAIT Z ;; BN u 1 ;; E ;; S ;; SEND ;; WAIT Z ;; PAUSE $IT_TMP/sw1 ;; \
BN u 2 ;; E ;; S ;; SEND ;; WAIT Z ;; PAUSE $IT_TMP/sw2 ;; BN u 3 ;; E ;; S ;; SEND ;; WAIT Z" \
    >"$IT_TMP/sw.out" 2>&1 &
sw_pid=$!
paused() { [[ $(grep -c '^PAUSE$' "$IT_TMP/$1") -ge $2 ]]; }
it_wait_for 20 paused sw.out 1 || it_failed "the session did not reach its first pause: $(cat "$IT_TMP/sw.out")"
it_status_mark
assert_ok "SET primary = new" -- psql_admin "SET primary = new"
touch "$IT_TMP/sw1"
it_wait_for 20 paused sw.out 2 || it_failed "the session did not reach its second pause: $(cat "$IT_TMP/sw.out")"
assert_ok "SET primary = old FORCE" -- psql_admin "SET primary = old FORCE"
touch "$IT_TMP/sw2"
wait "$sw_pid" || it_failed "the switching session failed: $(cat "$IT_TMP/sw.out")"
no_error "$(cat "$IT_TMP/sw.out")" "a primary switch and back between Executes: no error"
assert_delta nondeterministic_writes_total -eq 1 "...the Execute on new counted (pgdual's statement is on old)"
assert_delta pinned_writes_total -eq 1 "...the one back on old pinned"
assert_contains "$(cat "$IT_TMP/pgdual.log")" "pgdual's statement for it was lost" "...with its reason"

# ---- B2. a parameter whose type the pinned WITH write inferred, used again outside it ---------
# Without declared types $1 is int on the primary (t.n) and stored as '7' into lg's text column;
# the secondary's text no longer has the write that typed it: not pinned (counted) unless equal.
OUTSIDE='WITH w AS (INSERT INTO t (n) VALUES (5) RETURNING id) INSERT INTO lg (m) SELECT $1 FROM w'
BOTH='WITH w AS (INSERT INTO t (n) VALUES ($1) RETURNING id) INSERT INTO lg (m) SELECT $1 FROM w'
it_status_mark
out=$(raw "PN o $OUTSIDE ;; S ;; SEND ;; WAIT Z ;; BN o 008 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "untyped parameter (outside): $out"
no_error "$out" "a parameter used outside the pinned write only: no error"
assert_delta nondeterministic_writes_total -eq 0 "...pinned, not counted"
same lg "lg identical on old and new ('008' on both)"
same t "t identical on old and new"

# From here on writes may be counted (new diverged): each must be either identical or counted.
same_or_counted() {
    local sql="SELECT md5(coalesce(string_agg(w_::text, ',' ORDER BY w_::text), '')) FROM $1 w_"
    if [[ "$(psql_old "$DB" -tA -c "$sql")" == "$(psql_new "$DB" -tA -c "$sql")" ]]; then
        it_pass "$2: $1 identical"
    else
        assert_delta nondeterministic_writes_total -ge 1 "$2: $1 differs, counted (never silent)"
    fi
}
it_status_mark
out=$(raw "PN b $BOTH ;; S ;; SEND ;; WAIT Z ;; BN b 007 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "untyped parameter (both): $out"
no_error "$out" "a parameter typed by the pinned write and used again: no error"
assert_eq "7" "$(psql_old "$DB" -tA -c "SELECT m FROM lg WHERE m <> '008'")" "old stored it as an int (7)"
assert_delta nondeterministic_writes_total -ge 1 "...not pinned: counted"
same_or_counted lg "untyped parameter"

# ---- B1. rev_s1: a block with a SAVEPOINT after the pinned Execute, rolled back to -------------
# ROLLBACK TO a undoes pgdual's read-back (its DELETE) too: the rows come back into pgdual's table
# and the next read-back must not take them for its own (row 3 would get the block's value again
# on new, over the later UPDATE). The unnamed SAVEPOINT parsed after a write in its batch cannot
# change how the server lexes what follows (review 12e finding 3: it made pgdual forget the
# session's statements, and the last Execute of u went verbatim, counted): pinned too.
it_status_mark
out=$(raw "PN u $UPD ;; S ;; SEND ;; WAIT Z ;; BN u 1 ;; E ;; S ;; SEND ;; WAIT Z ;; \
Q BEGIN ;; SEND ;; WAIT Z ;; BN u 3 ;; E ;; P SAVEPOINT a ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; \
Q SELECT count(*) FROM pg_temp.pgdual_pin_rows ;; SEND ;; WAIT Z ;; Q ROLLBACK TO a ;; SEND ;; WAIT Z ;; \
Q COMMIT ;; SEND ;; WAIT Z ;; Q UPDATE t2 SET at = '1999-01-01' WHERE id = 3 ;; SEND ;; WAIT Z ;; \
Q WITH u AS (UPDATE t2 SET at = clock_timestamp() WHERE id = 5 RETURNING id) SELECT count(*) FROM u ;; SEND ;; WAIT Z ;; \
BN u 4 ;; E ;; S ;; SEND ;; WAIT Z") || it_failed "rev_s1: $out"
no_error "$out" "rev_s1: no error"
assert_eq "1999-01-01 00:00:00+00" "$(psql_new "$DB" -tA -c "SELECT at FROM t2 WHERE id = 3")" \
    "rev_s1: row 3 on new keeps the later UPDATE (the rows ROLLBACK TO brought back are not read back again)"
for id in 1 3 4 5; do
    assert_eq "$(psql_old "$DB" -tA -c "SELECT at FROM t2 WHERE id = $id")" \
        "$(psql_new "$DB" -tA -c "SELECT at FROM t2 WHERE id = $id")" "rev_s1: t2 row $id identical"
done
assert_delta nondeterministic_writes_total -eq 0 "rev_s1: nothing counted (every WITH write pinned)"

# ---- B3. rev_a: DISCARD TEMP mid-batch, then in a batch of its own ------------------------------
it_status_mark
out=$(raw "PN s $INS ;; S ;; SEND ;; WAIT Z ;; BN s 11 ;; E ;; S ;; SEND ;; WAIT Z ;; \
P DISCARD TEMP ;; B ;; E ;; BN s 12 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 13 ;; E ;; S ;; SEND ;; WAIT Z ;; \
Q DISCARD TEMP ;; SEND ;; WAIT Z ;; BN s 14 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT 1 ;; SEND ;; WAIT Z") ||
    it_failed "rev_a: $out"
no_error "$out" "DISCARD TEMP before a Bind: no error (no 42P01)"
assert_eq "Z I" "$(tail -n1 <<<"$out")" "...the session goes on"
assert_delta nondeterministic_writes_total -ge 3 "the Binds after DISCARD TEMP: counted (pgdual's statement was lost with its table)"
assert_delta pinned_writes_total -eq 1 "the one before it pinned"
same_or_counted t "rev_a"

# ---- B4. pin_writes off between the Parse and the Bind, DISCARD TEMP meanwhile -----------------
raw "PN s $INS ;; S ;; SEND ;; WAIT Z ;; BN s 21 ;; E ;; S ;; SEND ;; WAIT Z ;; PAUSE $IT_TMP/go1 ;; \
Q DISCARD TEMP ;; SEND ;; WAIT Z ;; BN s 22 ;; E ;; S ;; SEND ;; WAIT Z" >"$IT_TMP/b4.out" 2>&1 &
pid=$!
it_wait_for 20 paused b4.out 1 || it_failed "B4 did not reach its pause: $(cat "$IT_TMP/b4.out")"
it_status_mark
assert_ok "SET pin_writes = off" -- psql_admin "SET pin_writes = off"
touch "$IT_TMP/go1"
wait "$pid" || it_failed "B4: $(cat "$IT_TMP/b4.out")"
no_error "$(cat "$IT_TMP/b4.out")" "pin_writes off, DISCARD TEMP, then a Bind: no error"
assert_delta nondeterministic_writes_total -ge 1 "...counted"
assert_ok "SET pin_writes = on" -- psql_admin "SET pin_writes = on"

# ---- B4b. rev_a C: the secondary's backend killed, then DISCARD TEMP, then a Bind -------------
raw "PN s $INS ;; S ;; SEND ;; WAIT Z ;; BN s 61 ;; E ;; S ;; SEND ;; WAIT Z ;; PAUSE $IT_TMP/go2 ;; \
Q INSERT INTO t (n) VALUES (0) ;; SEND ;; WAIT Z ;; Q DISCARD TEMP ;; SEND ;; WAIT Z ;; \
BN s 62 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT 1 ;; SEND ;; WAIT Z" >"$IT_TMP/c.out" 2>&1 &
pid=$!
it_wait_for 20 paused c.out 1 || it_failed "B4b did not reach its pause: $(cat "$IT_TMP/c.out")"
it_status_mark
psql_new "$DB" -q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$DB' AND pid <> pg_backend_pid()" >/dev/null
touch "$IT_TMP/go2"
wait "$pid" || it_failed "B4b: $(cat "$IT_TMP/c.out")"
no_error "$(cat "$IT_TMP/c.out")" "the secondary killed, DISCARD TEMP, then a Bind: no error"
assert_eq "Z I" "$(tail -n1 "$IT_TMP/c.out")" "...the session goes on"
sql="SELECT id, n, at FROM t WHERE n IN (0, 61, 62) ORDER BY id"
if [[ "$(psql_old "$DB" -tA -c "$sql")" == "$(psql_new "$DB" -tA -c "$sql")" ]]; then
    it_pass "the secondary killed: its rows identical"
else
    state=$(it_status secondary_state)
    if [[ "$state" != in_sync ]]; then
        it_pass "the secondary killed: its rows differ, new is $state (never silent)"
    else
        it_failed "the secondary killed: its rows differ while new is in_sync"
    fi
fi

# ---- B5. rev_d: DML with user code after a pinned WITH statement --------------------------------
out=$(raw "PN s $INS ;; S ;; SEND ;; WAIT Z ;; BN s 31 ;; E ;; S ;; SEND ;; WAIT Z ;; \
Q UPDATE k SET n = two() WHERE id = 1 ;; SEND ;; WAIT Z ;; Q SELECT 1 ;; SEND ;; WAIT Z") ||
    it_failed "rev_d: $out"
no_error "$out" "user code after a pinned WITH statement: no error"
assert_eq "Z I" "$(tail -n1 <<<"$out")" "...ReadyForQuery"

# ---- B6. an error after a WITH write in a block, a savepoint after it rolled back to -----------
it_status_mark
out=$(raw "PN u4 $UPD ;; S ;; SEND ;; WAIT Z ;; Q BEGIN ;; SEND ;; WAIT Z ;; \
BN u4 3 ;; E ;; P SAVEPOINT a ;; B ;; E ;; P SELECT 1/0 ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; \
Q ROLLBACK TO a ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z") || it_failed "savepoint: $out"
assert_contains "$out" "E 22012" "the batch fails at 1/0"
assert_eq "Z I" "$(tail -n1 <<<"$out")" "COMMIT ends the block"
same_or_counted t2 "an error after the WITH write, ROLLBACK TO a savepoint after it"

# ---- B7. a Bind whose Execute comes in a later batch; a portal executed twice -------------------
it_status_mark
out=$(raw "PN s $INS ;; S ;; SEND ;; WAIT Z ;; Q BEGIN ;; SEND ;; WAIT Z ;; BN s 41 ;; S ;; SEND ;; WAIT Z ;; E ;; S ;; SEND ;; WAIT Z ;; \
BN s 42 ;; E ;; E ;; S ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z ;; BN s 43 ;; E ;; S ;; SEND ;; WAIT Z")
no_error "$out" "an Execute in a later batch, a portal executed twice: no error"
assert_delta nondeterministic_writes_total -ge 1 "...counted"
same_or_counted t "later Execute, twice"
assert_eq "0" "$(psql_old "$DB" -tA -c "SELECT 0")" "old still answers"

# ---- B8. pgdual's table dropped mid-batch by a trigger behind DML pgdual vouches for ------------
# pgdual's Parse fails on the primary (42P01): the client gets the server's error as for a failed
# Bind, its ReadyForQuery, and the session goes on; nothing of the WITH write ran.
psql_proxy "$DB" -q -c "CREATE TABLE trg (x int);
CREATE FUNCTION dropper() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN DROP TABLE IF EXISTS pg_temp.pgdual_pin_rows; RETURN NEW; END';
CREATE TRIGGER trg_drop BEFORE INSERT ON trg FOR EACH ROW EXECUTE FUNCTION dropper();"
before=$(psql_old "$DB" -tA -c "SELECT count(*) FROM t")
out=$(raw "PN s $INS ;; S ;; SEND ;; WAIT Z ;; P INSERT INTO trg VALUES (1) ;; B ;; E ;; BN s 51 ;; E ;; S ;; \
SEND ;; WAIT Z ;; Q SELECT 1 ;; SEND ;; WAIT Z ;; BN s 52 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "a dropped table mid-batch: $out"
assert_eq "Z I" "$(tail -n1 <<<"$out")" "pgdual's table dropped mid-batch: the session goes on"
assert_contains "$out" "C SELECT 1" "...the next statement answers"
if grep -q '^E ' <<<"$out"; then
    assert_contains "$out" "E 42P01" "...the failing Bind's error is the server's (42P01)"
fi
assert_eq "$((before + 1))" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM t")" \
    "...the WITH write of the failed batch did not run; the next one did"
same_or_counted t "a dropped table mid-batch"

psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF"
it_proxy_stop
