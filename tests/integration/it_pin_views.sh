#!/usr/bin/env bash
# tests/integration/it_pin_views.sh: a write reading a view stores what the view's query
# computes, which the statement's text does not show. pgdual looks up the relations a write
# reads (with its target's catalog lookup) and classifies a view's query and those of the views
# it reads, as it classifies the statement: through pgdual, with the source table's physical
# order made different on new first,
# (A) INSERT ... SELECT from a view selecting clock_timestamp(): pinned (the view's clock);
# (B) ... from a view with string_agg (row order): pinned; (C) ... through a view of such a
#     view: pinned; (D) UPDATE ... SET = (SELECT ... FROM the view): pinned; (E) the extended
#     protocol: pinned;
# (F) a view of plain expressions: not pinned, nothing counted;
# (G) a view calling a user function: counted (every table owed); (H) REFRESH MATERIALIZED
#     VIEW of a view whose query makes up values: counted;
# (I) a WITH query named like the view it reads, (K) a view whose definition pgdual could not read
#     back, (L) a sequence's last_value: pinned; (J) a view read after DDL in the same Query:
#     counted (review 17: all four were silent).
# Before, A-E left new different and F-H were silent: in_sync, nothing counted.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_views
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
same() { it_same "$DB" "$@"; }

psql_proxy "$DB" -q <<'SQL'
CREATE TABLE src (k int, v text);
INSERT INTO src SELECT g % 5, 'v' || g FROM generate_series(1, 40) g;
CREATE VIEW vclock AS SELECT k, v, clock_timestamp() AS ts FROM src;
CREATE VIEW vagg AS SELECT k, string_agg(v, ',') AS s FROM src GROUP BY k;
CREATE VIEW vnest AS SELECT k, s FROM vagg WHERE k > 0;
CREATE VIEW vplain AS SELECT k, upper(v) AS v FROM src;
CREATE TABLE stamped (v text PRIMARY KEY, ts timestamptz);
CREATE TABLE joined (k int PRIMARY KEY, s text);
CREATE TABLE nested (k int PRIMARY KEY, s text);
CREATE TABLE t (id int PRIMARY KEY, s text);
INSERT INTO t SELECT g, '' FROM generate_series(0, 4) g;
CREATE TABLE plain (k int, v text);
CREATE TABLE viaext (v text PRIMARY KEY, ts timestamptz);
SQL
it_reorder_src "$DB"
check() { it_pinned_same "$DB" "$@"; }

it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO stamped SELECT v, ts FROM vclock"
check "A: a view's clock_timestamp()" stamped 1

it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO joined SELECT k, s FROM public.vagg"
check "B: a view's string_agg" joined 1

it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO nested SELECT * FROM vnest"
check "C: a view of that view" nested 1

it_status_mark
psql_proxy "$DB" -q -c "UPDATE t SET s = (SELECT s FROM vagg WHERE vagg.k = t.id)"
check "D: UPDATE ... SET = (SELECT ... FROM the view)" t 1

it_status_mark
echo "INSERT INTO viaext SELECT v, ts FROM vclock;" >"$IT_TMP/ext.sql"
pgbench -n -t 1 -M prepared -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -f "$IT_TMP/ext.sql" "$DB" \
    >"$IT_TMP/ext.out" 2>&1 || it_fail "pgbench: $(cat "$IT_TMP/ext.out")"
check "E: the extended protocol" viaext 1

it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO plain SELECT * FROM vplain"
check "F: a view of plain expressions" plain 0

# --- I: a WITH query named like the view it reads; K: a view pgdual could not look up (its
# definition longer than a lookup's row may be); L: a sequence read as a relation ----------------
psql_proxy "$DB" -q -c "CREATE TABLE withv (k int PRIMARY KEY, s text)" \
    -c "CREATE TABLE bigv (v text PRIMARY KEY, ts timestamptz)" \
    -c "CREATE TABLE seqread (id int PRIMARY KEY, n bigint)" -c "CREATE SEQUENCE sq" \
    -c "SELECT nextval('sq')"
cases=$(for i in $(seq 1 300); do printf "WHEN v = 'label_number_%d' THEN %d " "$i" "$i"; done)
psql_proxy "$DB" -q -c "CREATE VIEW vbig AS SELECT v, CASE $cases ELSE 0 END AS c, clock_timestamp() AS ts FROM src"
it_status_mark
psql_proxy "$DB" -q -c "WITH vagg AS (SELECT * FROM vagg WHERE k > 0) INSERT INTO withv SELECT k, s FROM vagg"
check "I: WITH vagg AS (SELECT ... FROM vagg)" withv 1
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO bigv SELECT v, ts FROM vbig"
check "K: a view whose definition could not be read back" bigv 1
psql_new "$DB" -q -c "SELECT setval('sq', 1000)"
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO seqread SELECT 1, last_value FROM sq"
check "L: a sequence's last_value (new's differs)" seqread 1
assert_eq in_sync "$(it_status secondary_state)" "A-L: new is in_sync"

# --- G, H: counted ---------------------------------------------------------------------------
psql_proxy "$DB" -q <<'SQL'
CREATE FUNCTION tag(x text) RETURNS text LANGUAGE sql AS $$ SELECT x || '!' $$;
CREATE VIEW vcode AS SELECT k, tag(v) AS v FROM src;
SQL
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO plain SELECT * FROM vcode"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "G: a view calling a user function: counted"
assert_eq diverged "$(it_status secondary_state)" "G: new out of in_sync"
assert_contains "$(it_status reconcile_tables)" "*" "G: every table owed"

# J: DDL earlier in the same Query: what a lookup said may no longer hold; the UPDATE's table is
# unknown too, so it cannot be pinned: counted (it was silent).
psql_proxy "$DB" -q -c "CREATE TABLE later (id int PRIMARY KEY, s text)" \
    -c "INSERT INTO later SELECT g, '' FROM generate_series(0, 4) g"
it_status_mark
psql_proxy "$DB" -q -c "CREATE INDEX ON src (k); UPDATE later SET s = (SELECT s FROM vagg WHERE vagg.k = later.id)"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "J: a view read after DDL in the same Query: counted"

for q in psql_old psql_new; do
    "$q" "$DB" -q -c "CREATE MATERIALIZED VIEW mv AS SELECT k, v, clock_timestamp() AS ts FROM src WITH NO DATA"
done
it_status_mark
psql_proxy "$DB" -q -c "REFRESH MATERIALIZED VIEW mv"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "H: REFRESH of a view that reads the clock: counted"
it_status_mark
psql_proxy "$DB" -q -c "REFRESH MATERIALIZED VIEW mv WITH NO DATA"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "H: REFRESH ... WITH NO DATA stores nothing: not counted"

it_proxy_stop
it_check_sanitizer_log
it_pass
