#!/usr/bin/env bash
# tests/integration/it_pin_review.sh: what two reviews of deterministic writes found, each shown
# against the real clusters. A prepared statement parsed with pgdual's RETURNING list still loses
# those columns after a DO block (the client saw them as DataRows); a client's unnamed statement
# survives pgdual's own statements on the primary (the wrap's BEGIN destroyed it: 26000); dates
# travel in ISO form (DateStyle Postgres with 'IST' read back as Israel time); writes pgdual
# cannot pin are counted instead of silent: DDL before an INSERT in the same query, CREATE TABLE
# AS with random(); set_config(search_path) keeps a session's table knowledge its own.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_review
PQSCRIPT=${PGDUAL_PQSCRIPT:-$(dirname "$PGDUAL_BIN")/tests/pqscript}
[[ -x "$PQSCRIPT" ]] || it_fail "pqscript not found at $PQSCRIPT (cmake --build build)"
RAWPG="$IT_HARNESS_DIR/rawpg.py"
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
pq() { timeout 60 "$PQSCRIPT" "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB"; }
same() { it_same "$DB" "$@"; }

psql_proxy "$DB" -q -c "CREATE TABLE u1 (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), x text,
    ts timestamptz DEFAULT clock_timestamp())"

# --- a pinned prepared statement after code pgdual cannot see into -----------------------------
it_status_mark
out=$(printf '%s\n' $'P\tins\tINSERT INTO u1 (x) VALUES ($1)' $'E\tins\tone' \
    $'Q\tDO $$BEGIN END$$' $'E\tins\ttwo' | pq)
assert_eq "COMMAND_OK|0|0" "$(sed -n 4p <<<"$out" | awk -F'\t' '{ print $2 "|" $4 "|" $6 }')" \
    "after a DO block the INSERT answers no rows and no fields (pgdual's column stripped)"
same u1 "u1 identical on both sides (both INSERTs pinned)"
assert_delta nondeterministic_writes_total -eq 1 "the DO block counted (code pgdual cannot see into)"

# --- the client's unnamed statement survives the wrap of an autocommit write -------------------
out=$(timeout 30 python3 "$RAWPG" "$PROXY_PORT" "$DB" \
    "P INSERT INTO u1 (x) VALUES ('unnamed') ;; S ;; SEND ;; WAIT Z ;; B ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_contains "$out" "C INSERT 0 1" "Bind of the unnamed statement parsed in the batch before runs"
assert_not_contains "$out" "E 26000" "no 'unnamed prepared statement does not exist'"
same u1 "u1 identical on both sides"

# --- DateStyle Postgres, TimeZone Asia/Kolkata ('IST' is also Israel's abbreviation) ------------
psql_proxy "$DB" -q -c "SET DateStyle = 'Postgres, DMY'" -c "SET TimeZone = 'Asia/Kolkata'" \
    -c "INSERT INTO u1 (x) VALUES ('ist')"
same u1 "u1 identical on both sides under DateStyle Postgres in India"

# --- what cannot be pinned is counted, never silent -------------------------------------------
it_proxy_stop # the DO block above left new diverged, owing every table: start afresh
rm -f "$IT_TMP/pgdual.state"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the unpinnable writes"
it_status_mark
psql_proxy "$DB" -q -c "CREATE TABLE r3 (id int PRIMARY KEY, c timestamptz)"
psql_proxy "$DB" -q -c "ALTER TABLE r3 ALTER COLUMN c SET DEFAULT clock_timestamp(); INSERT INTO public.r3 (id) VALUES (1)"
assert_delta nondeterministic_writes_total -eq 1 "DDL then an INSERT in one query: counted"
assert_contains "$(it_status reconcile_tables)" "$DB:public.r3" "public.r3 is on the reconciliation list"
it_status_mark
psql_proxy "$DB" -q -c "CREATE TABLE ctas AS SELECT g AS id, random() AS r FROM generate_series(1, 3) g"
assert_delta nondeterministic_writes_total -eq 1 "CREATE TABLE AS with random(): counted"
assert_eq "diverged" "$(it_status secondary_state)" "and new is out of in_sync"
assert_eq "*" "$(it_status reconcile_tables)" \
    "a table named without its schema (search_path decides) owes every table"
assert_contains "$(cat "$IT_TMP/pgdual.state")" "secondary_reconcile = " \
    "the state file lists what the reconciliation must cover"
it_proxy_stop

# --- set_config(search_path) keeps the session's table knowledge its own ------------------------
rm -f "$IT_TMP/pgdual.state"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
psql_proxy "$DB" -q -c "CREATE SCHEMA s1" -c "CREATE TABLE s1.pz (id int PRIMARY KEY, c timestamptz)" \
    -c "CREATE TABLE public.pz (id int PRIMARY KEY, c timestamptz DEFAULT clock_timestamp())"
psql_proxy "$DB" -q -c "SELECT set_config('search_path', 's1', false)" \
    -c "INSERT INTO pz (id) VALUES (1)"
psql_proxy "$DB" -q -c "INSERT INTO pz (id) VALUES (2)" # another session: public.pz
same public.pz "public.pz identical: the other session's s1.pz knowledge was not shared"
assert_eq "in_sync" "$(it_status secondary_state)" "and nothing was counted"
it_proxy_stop
