#!/usr/bin/env bash
# tests/integration/it_pin_cte_ext.sh: data-modifying WITH queries pinned through the extended
# protocol (Parse/Bind/Execute/Sync, libpq's PQprepare/PQexecPrepared and PQexecParams through
# pqscript): a serial id made up in a WITH INSERT, rows picked by LIMIT $1 in a WITH DELETE moved
# into an archive with its own identity and clock_timestamp() defaults, a WITH UPDATE of now(),
# a WITH INSERT whose outer statement returns no row; named statements executed twice with other
# parameters and unnamed ones, in and out of transaction blocks, with q's physical order made
# different on new first. Old and new stay identical (every column), the client gets what old
# alone answers (the same script against a copy on old), nothing is counted as unpinned.
# shellcheck disable=SC2016 # $n in single quotes are SQL parameters
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_cte_ext
PQSCRIPT=${PGDUAL_PQSCRIPT:-$(dirname "$PGDUAL_BIN")/tests/pqscript}
[[ -x "$PQSCRIPT" ]] || it_fail "pqscript not found at $PQSCRIPT (cmake --build build)"
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
same() { it_same "$DB" "$@"; }
SETUP_SQL="
DROP TABLE IF EXISTS t, q, archive;
CREATE TABLE t (id serial PRIMARY KEY, v text, touched timestamptz, r float8 DEFAULT random());
CREATE TABLE q (id int PRIMARY KEY, payload text);
CREATE TABLE archive (aid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id int, payload text,
    moved_at timestamptz DEFAULT clock_timestamp());
INSERT INTO t (v, touched, r) SELECT 'v' || g, '2020-01-01', 0 FROM generate_series(1, 20) g;
INSERT INTO q SELECT g, 'p' || g FROM generate_series(1, 200) g;"
psql_proxy "$DB" -q -c "$SETUP_SQL"
# new's physical order differs: LIMIT without ORDER BY picks other rows there
psql_new "$DB" -q -c "UPDATE q SET payload = payload WHERE id % 2 = 0" -c "VACUUM q"
REF=${DB}_ref
psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF" -c "CREATE DATABASE $REF"
psql_old "$REF" -q -c "$SETUP_SQL"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the WITH writes"

INS='WITH ins AS (INSERT INTO t (v) VALUES ($1) RETURNING id) SELECT id FROM ins'
MOVE='WITH moved AS (DELETE FROM q WHERE id IN (SELECT id FROM q LIMIT $1) RETURNING *) INSERT INTO archive (id, payload) SELECT * FROM moved'
UPD='WITH u AS (UPDATE t SET touched = now() WHERE id < $1 RETURNING id) SELECT count(*) FROM u'
NONE='WITH ins AS (INSERT INTO t (v) VALUES ($1), ($1 || $2) RETURNING id, v) SELECT 1 WHERE false'
# Each form prepared (named) and executed twice with other parameters, then twice unnamed
# (PQexecParams); the whole once in autocommit and once inside a transaction block.
section() {
    local p=$1
    printf 'P\t%s_ins\t%s\nE\t%s_ins\ta\nE\t%s_ins\tb\nX\t%s\tc\nX\t%s\td\n' \
        "$p" "$INS" "$p" "$p" "$INS" "$INS"
    printf 'P\t%s_mv\t%s\nE\t%s_mv\t5\nE\t%s_mv\t7\nX\t%s\t3\nX\t%s\t4\n' \
        "$p" "$MOVE" "$p" "$p" "$MOVE" "$MOVE"
    printf 'P\t%s_up\t%s\nE\t%s_up\t5\nE\t%s_up\t12\nX\t%s\t8\nX\t%s\t30\n' \
        "$p" "$UPD" "$p" "$p" "$UPD" "$UPD"
    printf 'P\t%s_no\t%s\nE\t%s_no\te\tf\nE\t%s_no\tg\th\nX\t%s\ti\tj\nX\t%s\tk\tl\n' \
        "$p" "$NONE" "$p" "$p" "$NONE" "$NONE"
}
script=$( {
    section auto
    printf 'Q\tBEGIN\n'
    section blk
    printf 'Q\tCOMMIT\n'
})
it_status_mark
via=$(timeout 60 "$PQSCRIPT" "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB" <<<"$script") ||
    it_failed "pqscript via pgdual: $via"
ref=$(timeout 60 "$PQSCRIPT" "host=127.0.0.1 port=$OLD_PORT user=postgres dbname=$REF" <<<"$script") ||
    it_failed "pqscript on old: $ref"
[[ "$ref" == "$via" ]] || diff <(echo "$ref") <(echo "$via") >&2 || true
assert_eq "$ref" "$via" "every reply as old alone's (status, tag, rows, columns, parameters, value)"
assert_contains "$via" $'INSERT 0 5' "the archive INSERT's tag"
assert_contains "$via" $'\t21\n' "the serial id made up in the WITH INSERT (old's first new id)"
assert_delta nondeterministic_writes_total -eq 0 "pinned WITH writes through the extended protocol are not counted"
assert_delta pinned_writes_total -eq 32 "the secondary ran each of the 32 Executes pinned"
assert_eq "in_sync" "$(it_status secondary_state)" "new stays in_sync"
for tb in t q archive; do
    same "$tb" "$tb identical on old and new (every column)"
done
assert_eq "38" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM archive")" "38 rows archived (5 + 7 + 3 + 4, twice)"

# --- what is not pinned stays counted: a SQL PREPARE of a WITH write ------------------------
it_status_mark
psql_proxy "$DB" -q -c "PREPARE w(text) AS $INS" -c "EXECUTE w('sql')" >/dev/null
assert_delta nondeterministic_writes_total -ge 1 "a SQL PREPARE of a WITH INSERT: counted"
psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF"
it_proxy_stop
