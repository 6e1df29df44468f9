#!/usr/bin/env bash
# tests/integration/it_pin_cte_ext3.sh: data-modifying WITH queries through the extended
# protocol, review 12c (issue 12), message by message (rawpg.py):
#  1. a WITH statement bound after a table that shadows its own was made (CREATE TABLE c.u, c
#     first in search_path), or after SET search_path: the write lands where old alone puts it,
#     counted ("settings changed since it was prepared"); a SET before the Parse only: pinned;
#  4. the client's own statement named "pgdual.cte": its answers are old alone's, never pgdual's
#     statement's; the session's WITH writes are counted from then on;
#  6. a portal of a pinned WITH statement executed again in a later batch of the block: new does
#     not run the write afresh (one row on each side);
#  5. the simple Query "ROLLBACK TO a; WITH w AS (INSERT ...) ..." with pgdual's table made after
#     the savepoint: no 42P01, old alone's answers, counted.
# shellcheck disable=SC2016 # $1 in single quotes are SQL parameters
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_cte_ext3
REF=${DB}_ref
RAWPG="$IT_HARNESS_DIR/rawpg.py"
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
DIVLOG="$IT_TMP/divergences.jsonl"
same() { it_same "$DB" "$@"; }
no_error() {
    if grep -q '^E ' <<<"$1"; then
        it_failed "$2: $(grep '^E ' <<<"$1")"
    else
        it_pass "$2"
    fi
}
raw() { timeout 30 python3 "$RAWPG" "$PROXY_PORT" "$DB" "$1"; }
ref() { timeout 30 python3 "$RAWPG" "$OLD_PORT" "$REF" "$1"; }
old_n() { psql_old "$DB" -tA -c "SELECT count(*) FROM $1 WHERE n = $2"; }
new_n() { psql_new "$DB" -tA -c "SELECT count(*) FROM $1 WHERE n = $2"; }
SETUP_SQL="
CREATE SCHEMA a; CREATE SCHEMA b;
CREATE TABLE a.t (id serial PRIMARY KEY, n int);
CREATE TABLE b.t (id serial PRIMARY KEY, n int);
CREATE TABLE t2 (id serial PRIMARY KEY, n int);
CREATE SCHEMA c; CREATE TABLE u (id serial PRIMARY KEY, n int);"
psql_proxy "$DB" -q -c "$SETUP_SQL"
psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF" -c "CREATE DATABASE $REF"
psql_old "$REF" -q -c "$SETUP_SQL"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the WITH writes"

INS='WITH w AS (INSERT INTO t (n) VALUES ($1) RETURNING id) SELECT id FROM w'
INS2='WITH w AS (INSERT INTO t2 (n) VALUES ($1) RETURNING id) SELECT id FROM w'
INSU='WITH w AS (INSERT INTO u (n) VALUES ($1) RETURNING id) SELECT id FROM w'

# ---- 1. name resolution changed between the Parse and the Bind ---------------------------------
# The server resolves a prepared statement's names again when search_path changed since (PG 15:
# with the current one) but not when a table made since shadows the one it found; pgdual's
# statement, parsed at each Bind, would find the new table. Any change since the Parse (SET, DDL,
# code pgdual cannot see into): the client's Bind goes verbatim, counted.
it_status_mark
out=$(raw "Q SET search_path = a, public ;; SEND ;; WAIT Z ;; PN s $INS ;; S ;; SEND ;; WAIT Z ;; \
BN s 9 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 10 ;; E ;; S ;; SEND ;; WAIT Z") || it_failed "1a: $out"
no_error "$out" "SET search_path before the Parse only: no error"
assert_delta nondeterministic_writes_total -eq 0 "...nothing counted"
assert_delta pinned_writes_total -eq 2 "...both Executes pinned"
same a.t "a.t identical on old and new"

it_status_mark
out=$(raw "Q SET search_path = c, public ;; SEND ;; WAIT Z ;; PN s $INSU ;; S ;; SEND ;; WAIT Z ;; \
BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; Q CREATE TABLE c.u (id serial PRIMARY KEY, n int) ;; SEND ;; \
WAIT Z ;; BN s 2 ;; E ;; S ;; SEND ;; WAIT Z") || it_failed "1b: $out"
no_error "$out" "a table made after the Parse that shadows the statement's: no error"
assert_eq "1 0" "$(old_n public.u 2) $(old_n c.u 2)" \
    "...old: the row in public.u, as old alone (the statement keeps the table it found)"
assert_delta nondeterministic_writes_total -eq 1 "...the write counted"
assert_delta pinned_writes_total -eq 1 "...the Execute before the CREATE TABLE pinned"
assert_contains "$(cat "$DIVLOG")" "settings or tables changed since it was prepared" "...with its reason"

# SET search_path between the Parse and the Bind: the row where old alone puts it (b.t): the server
# analyses the client's statement and pgdual's again alike (both prepared at the same moment): pinned.
S1C="Q SET search_path = a, public ;; SEND ;; WAIT Z ;; PN s $INS ;; S ;; SEND ;; WAIT Z ;; \
Q SET search_path = b, public ;; SEND ;; WAIT Z ;; BN s 7 ;; E ;; S ;; SEND ;; WAIT Z"
it_status_mark
out=$(raw "$S1C") || it_failed "1c: $out"
ref "$S1C" >/dev/null || it_failed "1c on old"
no_error "$out" "SET search_path between the Parse and the Bind: no error"
assert_eq "0 1" "$(old_n a.t 7) $(old_n b.t 7)" "...old: the row in b.t (the server parses it again)"
assert_eq "$(psql_old "$REF" -tA -c "SELECT count(*) FROM b.t WHERE n = 7")" "$(old_n b.t 7)" \
    "...as old alone"
assert_eq "0 1" "$(new_n a.t 7) $(new_n b.t 7)" "...new: the row in b.t too"
assert_delta nondeterministic_writes_total -eq 0 "...pinned: pgdual's statement is parsed again with the client's"
same b.t "b.t identical on old and new"

# ---- 4. a client's statement named as pgdual's own ----------------------------------------------
S4="DETAIL ;; PN pgdual.cte SELECT \$1::int ;; PN s $INS2 ;; S ;; SEND ;; WAIT Z ;; \
BN s 5 ;; E ;; S ;; SEND ;; WAIT Z ;; BN pgdual.cte 6 ;; E ;; S ;; SEND ;; WAIT Z ;; \
BN s 11 ;; E ;; S ;; SEND ;; WAIT Z ;; BN pgdual.cte 12 ;; E ;; S ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$S4") || it_failed "4 via pgdual: $via"
old=$(ref "$S4") || it_failed "4 on old: $old"
assert_eq "$old" "$via" "a statement named pgdual.cte: every message as old alone's"
assert_eq "0 0" "$(old_n t2 6) $(old_n t2 12)" "...its Binds ran the client's SELECT, not pgdual's write"
assert_delta nondeterministic_writes_total -eq 2 "...the WITH writes of the session counted"
same t2 "t2 identical on old and new"

# ---- 6. a portal of a pinned WITH statement executed again in a later batch --------------------
S6="PN s $INS2 ;; S ;; SEND ;; WAIT Z ;; Q BEGIN ;; SEND ;; WAIT Z ;; BN s 61 ;; E ;; S ;; SEND ;; \
WAIT Z ;; E ;; S ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z"
via=$(raw "$S6") || it_failed "6 via pgdual: $via"
old=$(ref "$S6") || it_failed "6 on old: $old"
assert_eq "$old" "$via" "a finished portal executed again: every message as old alone's"
assert_eq "1 1" "$(old_n t2 61) $(new_n t2 61)" "...one row on old, one on new (no fresh write on new)"
same t2 "t2 identical on old and new"

# ---- 5. the simple Query: ROLLBACK TO a savepoint older than pgdual's table, then a WITH write --
S5="Q BEGIN ;; SEND ;; WAIT Z ;; Q SAVEPOINT a ;; SEND ;; WAIT Z ;; \
Q WITH w AS (INSERT INTO t2 (n) VALUES (41) RETURNING id) SELECT count(*) FROM w ;; SEND ;; WAIT Z ;; \
Q ROLLBACK TO a; WITH w AS (INSERT INTO t2 (n) VALUES (42) RETURNING id) SELECT count(*) FROM w ;; \
SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$S5") || it_failed "5 via pgdual: $via"
old=$(ref "$S5") || it_failed "5 on old: $old"
no_error "$via" "ROLLBACK TO then a WITH write in one Query: no error (no 42P01)"
assert_eq "$old" "$via" "...every message as old alone's"
assert_eq "0 1" "$(old_n t2 41) $(old_n t2 42)" "...old: the write after ROLLBACK TO committed"
assert_delta nondeterministic_writes_total -ge 1 "...counted"
assert_contains "$(cat "$DIVLOG")" "a write nested in another statement" "...with its reason"

psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF"
it_proxy_stop
