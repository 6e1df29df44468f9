#!/usr/bin/env bash
# tests/integration/it_pin_cte_ext4.sh: data-modifying WITH queries through the extended
# protocol, reviews 12c/12d against the third design (pgdual's own statement parsed on the
# primary right behind the client's Parse), message by message (rawpg.py), each script run through
# pgdual and against old alone (database REF) and compared:
#  into: SELECT ... INTO TEMP u shadows public.u after the Parse: old writes public.u as old alone;
#        the secondary's statement (parsed at the Execute) is not run: counted;
#  tz:   set_config('TimeZone') from a prepared statement between the Parse and the Bind: the
#        literal read as old alone reads it (at the Parse); counted (the secondary would not);
#  xs:   another session makes c.u, which shadows public.u, between the Parse and the Bind: old
#        writes public.u as old alone (the secondary's statement is the known gap, README);
#  app:  SET application_name before each request, and once at connect with BEGIN/COMMIT around
#        each: every WITH write pinned, nothing counted, in_sync;
#  lost: the first WITH Parse inside a block that rolls back (pgdual's table with it), then a Bind:
#        counted, old alone's answers and rows;
#  port: a portal pgdual ran to completion executed again in a later batch, a Bind of a live
#        portal (42P03): old alone's answers, nothing counted;
#  close: the unnamed statement parsed again and again, a Query between, a named one closed:
#        pgdual's own statements on the primary follow the client's (none left behind).
# shellcheck disable=SC2016 # $1 in single quotes are SQL parameters
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_cte_ext4
REF=${DB}_ref
RAWPG="$IT_HARNESS_DIR/rawpg.py"
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
same() { it_same "$DB" "$@"; }
as_ref() { it_as_ref "$REF" "$DB" "$@"; }
raw() { timeout 30 python3 "$RAWPG" "$PROXY_PORT" "$DB" "$1"; }
ref() { timeout 30 python3 "$RAWPG" "$OLD_PORT" "$REF" "$1"; }
SETUP_SQL="
CREATE TABLE u (id serial PRIMARY KEY, n int);
CREATE TABLE ev (n serial PRIMARY KEY, id int, at timestamptz);
CREATE TABLE ap (id serial PRIMARY KEY, n int);
CREATE TABLE lt (id serial PRIMARY KEY, n int);
CREATE SCHEMA c; CREATE TABLE xu (id serial PRIMARY KEY, n int);
CREATE TABLE pt (id serial PRIMARY KEY, n int);"
psql_proxy "$DB" -q -c "$SETUP_SQL"
psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF" -c "CREATE DATABASE $REF"
psql_old "$REF" -q -c "$SETUP_SQL"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the WITH writes"

# ---- app: SET application_name between requests (review 12d finding 4) -------------------------
INSA='WITH w AS (INSERT INTO ap (n) VALUES ($1) RETURNING id) SELECT id FROM w'
SA="DETAIL ;; Q SET application_name = 'req0' ;; SEND ;; WAIT Z ;; PN s $INSA ;; S ;; SEND ;; WAIT Z ;; \
BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SET application_name = 'req1' ;; SEND ;; WAIT Z ;; \
BN s 2 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SET application_name = 'req2' ;; SEND ;; WAIT Z ;; \
BN s 3 ;; E ;; S ;; SEND ;; WAIT Z"
SA2="DETAIL ;; Q SET application_name = 'app' ;; SEND ;; WAIT Z ;; Q BEGIN ;; SEND ;; WAIT Z ;; \
PN s2 $INSA ;; S ;; SEND ;; WAIT Z ;; BN s2 10 ;; E ;; S ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; \
WAIT Z ;; Q BEGIN ;; SEND ;; WAIT Z ;; BN s2 11 ;; E ;; S ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; \
WAIT Z ;; Q BEGIN ;; SEND ;; WAIT Z ;; BN s2 12 ;; E ;; S ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SA") || it_failed "app via pgdual: $via"
old=$(ref "$SA") || it_failed "app on old: $old"
assert_eq "$old" "$via" "SET application_name between requests: every message as old alone's"
via=$(raw "$SA2") || it_failed "app2 via pgdual: $via"
old=$(ref "$SA2") || it_failed "app2 on old: $old"
assert_eq "$old" "$via" "SET once, BEGIN/COMMIT around each request: every message as old alone's"
assert_delta nondeterministic_writes_total -eq 0 "...nothing counted"
assert_delta pinned_writes_total -eq 6 "...all six WITH writes pinned"
assert_eq "in_sync" "$(it_status secondary_state)" "...new stays in_sync"
same ap "ap identical on old and new"
as_ref ap "ap on old as old alone's"

# ---- into: SELECT ... INTO TEMP shadows the statement's table (review 12d finding 1) ------------
INSU='WITH w AS (INSERT INTO u (n) VALUES ($1) RETURNING id, n) SELECT id, n FROM w'
SI="DETAIL ;; Q CREATE TEMP TABLE tmp0 (i int) ;; SEND ;; WAIT Z ;; PN s $INSU ;; S ;; SEND ;; WAIT Z ;; \
BN s 300 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT 0 AS id, 0 AS n INTO TEMP u ;; SEND ;; WAIT Z ;; \
BN s 301 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT 'temp', id, n FROM pg_temp.u ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SI") || it_failed "into via pgdual: $via"
old=$(ref "$SI") || it_failed "into on old: $old"
assert_eq "$old" "$via" "SELECT INTO TEMP u after the Parse: every message as old alone's"
assert_eq "1" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM public.u WHERE n = 301")" \
    "...old: the row in public.u (the statement keeps the table it found)"
as_ref u "...u on old as old alone's"
assert_delta pinned_writes_total -eq 1 "...the Execute before the SELECT INTO pinned"
assert_delta nondeterministic_writes_total -eq 1 "...the one after counted"
assert_contains "$(cat "$IT_TMP/pgdual.log")" "settings or tables changed since it was prepared" \
    "...with its reason"

# ---- tz: set_config('TimeZone') run from a prepared statement (review 12d finding 2) -----------
INSE="WITH w AS (INSERT INTO ev (id, at) VALUES (\$1, '2024-01-01 10:00') RETURNING n) SELECT n FROM w"
ST="DETAIL ;; PN tz SELECT set_config('TimeZone', \$1, false) ;; PN s $INSE ;; S ;; SEND ;; WAIT Z ;; \
BN tz UTC ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; \
BN tz Asia/Tokyo ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 2 ;; E ;; S ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$ST") || it_failed "tz via pgdual: $via"
old=$(ref "$ST") || it_failed "tz on old: $old"
assert_eq "$old" "$via" "TimeZone set between the Parse and the Bind: every message as old alone's"
as_ref ev "...ev on old as old alone's (the literal read at the Parse)"
assert_delta nondeterministic_writes_total -le 1 "...at most the write after the change counted"
assert_delta nondeterministic_writes_total -ge 1 "...the write after the change counted"

# ---- xs: another session makes a table that shadows the statement's (review 12d finding 3) -----
FLAG="$IT_TMP/xs.go"
INSX='WITH w AS (INSERT INTO xu (n) VALUES ($1) RETURNING id) SELECT id FROM w'
SX="DETAIL ;; Q SET search_path = c, public ;; SEND ;; WAIT Z ;; PN s $INSX ;; S ;; SEND ;; WAIT Z ;; \
BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; PAUSE $FLAG ;; BN s 2 ;; E ;; S ;; SEND ;; WAIT Z"
xs_run() { # port db psql-function
    rm -f "$FLAG"
    timeout 60 python3 "$RAWPG" "$1" "$2" "$SX" >"$IT_TMP/xs.out" 2>&1 &
    local pid=$! deadline=$((SECONDS + 30))
    until grep -q '^PAUSE' "$IT_TMP/xs.out" 2>/dev/null; do
        ((SECONDS < deadline)) || it_failed "xs: no PAUSE"
        sleep 0.1
    done
    "$3" "$2" -q -c "CREATE TABLE c.xu (id serial PRIMARY KEY, n int)"
    touch "$FLAG"
    wait "$pid" || it_failed "xs: $(cat "$IT_TMP/xs.out")"
    cat "$IT_TMP/xs.out"
}
via=$(xs_run "$PROXY_PORT" "$DB" psql_proxy)
old=$(xs_run "$OLD_PORT" "$REF" psql_old)
assert_eq "$old" "$via" "a table made by another session shadows the statement's: as old alone"
assert_eq "1 0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM public.xu WHERE n = 2") \
$(psql_old "$DB" -tA -c "SELECT count(*) FROM c.xu WHERE n = 2")" \
    "...old: the row in public.xu (the statement keeps the table it found)"

# ---- lost: pgdual's table made in a block that rolls back ---------------------------------------
INSL='WITH w AS (INSERT INTO lt (n) VALUES ($1) RETURNING id) SELECT id FROM w'
SL="DETAIL ;; Q BEGIN ;; SEND ;; WAIT Z ;; PN s $INSL ;; S ;; SEND ;; WAIT Z ;; Q ROLLBACK ;; SEND ;; \
WAIT Z ;; BN s 5 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 6 ;; E ;; S ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SL") || it_failed "lost via pgdual: $via"
old=$(ref "$SL") || it_failed "lost on old: $old"
assert_eq "$old" "$via" "the first WITH Parse in a block that rolled back, then Binds: as old alone"
as_ref lt "...lt on old as old alone's"
assert_delta nondeterministic_writes_total -ge 1 "...counted (pgdual's statement was lost)"
assert_contains "$(cat "$IT_TMP/pgdual.log")" "pgdual's statement for it was lost" "...with its reason"

# ---- port: a finished portal executed again, a Bind of a live portal (review 12d finding 6) -----
INSP='WITH w AS (INSERT INTO pt (n) VALUES ($1) RETURNING id, n) SELECT n FROM w'
SP="DETAIL ;; PN s $INSP ;; S ;; SEND ;; WAIT Z ;; BP p s 1 ;; EP p ;; DP p ;; S ;; SEND ;; WAIT Z ;; \
Q BEGIN ;; SEND ;; WAIT Z ;; BP p s 2 ;; EP p ;; DP p ;; CP p ;; BP p s 3 ;; EP p ;; S ;; SEND ;; WAIT Z ;; \
DP p ;; EP p ;; S ;; SEND ;; WAIT Z ;; BP p s 6 ;; EP p ;; S ;; SEND ;; WAIT Z ;; Q ROLLBACK ;; SEND ;; \
WAIT Z ;; BP p s 7 ;; EP p ;; S ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SP") || it_failed "port via pgdual: $via"
old=$(ref "$SP") || it_failed "port on old: $old"
assert_eq "$old" "$via" "a finished portal executed again, a Bind of a live one (42P03): as old alone"
assert_contains "$via" "E 42P03" "...the Bind of the live portal fails"
assert_delta nondeterministic_writes_total -eq 0 "...nothing counted (nothing ran that could differ)"
same pt "pt identical on old and new"
as_ref pt "...pt on old as old alone's"

# ---- close: pgdual's statements go with the client's (re-Parse, Query, Close) --------------------
# The unnamed statement parsed again and again (as libpq's PQexecParams does), a simple Query
# between (it drops the unnamed statement: pgdual's is closed behind the next Parse), a named one
# closed: pgdual leaves only the statements the client holds behind on the primary.
INSN='WITH w AS (INSERT INTO pt (n) VALUES (80) RETURNING id) SELECT count(*) FROM w'
OWN="Q SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgdual.cte.%'"
SC="P $INSN ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; P $INSN ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; \
Q SELECT 1 ;; SEND ;; WAIT Z ;; P $INSN ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; PN k $INSN ;; S ;; SEND ;; \
WAIT Z ;; BN k ;; E ;; S ;; SEND ;; WAIT Z ;; DETAIL ;; $OWN ;; SEND ;; WAIT Z ;; CS k ;; S ;; SEND ;; \
WAIT Z ;; $OWN ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SC") || it_failed "close via pgdual: $via"
old=$(ref "$SC") || it_failed "close on old: $old"
assert_eq "$(grep -v '^D ' <<<"$old")" "$(grep -v '^D ' <<<"$via")" \
    "re-Parses, a Query, a Close: every message but pgdual's statement count as old alone's"
# the first count: the unnamed statement's and k's (the Query that counts drops the unnamed one:
# pgdual's is closed behind the Close of k, with k's)
assert_eq "D 2
D 0" "$(grep '^D ' <<<"$via")" "...pgdual holds one statement per client statement, none left"
assert_delta nondeterministic_writes_total -eq 0 "...nothing counted"
assert_delta pinned_writes_total -eq 4 "...all four pinned"
same pt "pt identical on old and new"

psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF"
it_proxy_stop
