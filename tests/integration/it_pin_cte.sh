#!/usr/bin/env bash
# tests/integration/it_pin_cte.sh: data-modifying WITH queries are pinned (a simple Query): a
# serial id made up in a WITH INSERT read by the outer SELECT, rows picked by LIMIT in a WITH
# DELETE moved into an archive with its own defaults, a WITH UPDATE of now() counted by the
# outer SELECT, a WITH INSERT whose outer statement returns no row; in and out of transaction
# blocks, with the tables' physical order made different on new first. Old and new stay
# identical (every column), the client gets the bytes old alone sends (compared with a direct
# connection to old over the same data), nondeterministic_writes_total does not move. The
# extended protocol's WITH writes stay counted, never silent.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_cte
PQSCRIPT=${PGDUAL_PQSCRIPT:-$(dirname "$PGDUAL_BIN")/tests/pqscript}
[[ -x "$PQSCRIPT" ]] || it_fail "pqscript not found at $PQSCRIPT (cmake --build build)"
RAWPG="$IT_HARNESS_DIR/rawpg.py"
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
same() {
    local sql="SELECT md5(coalesce(string_agg(w_::text, ',' ORDER BY w_::text), '')) FROM $1 w_"
    assert_eq "$(psql_old "$DB" -tA -c "$sql")" "$(psql_new "$DB" -tA -c "$sql")" "$2"
}
SETUP_SQL="
DROP TABLE IF EXISTS t, q, archive;
CREATE TABLE t (id serial PRIMARY KEY, v text, touched timestamptz, r float8 DEFAULT random());
CREATE TABLE q (id int PRIMARY KEY, payload text);
CREATE TABLE archive (aid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id int, payload text,
    moved_at timestamptz DEFAULT clock_timestamp());
INSERT INTO t (v, touched, r) SELECT 'v' || g, '2020-01-01', 0 FROM generate_series(1, 20) g;
INSERT INTO q SELECT g, 'p' || g FROM generate_series(1, 60) g;"
psql_proxy "$DB" -q -c "$SETUP_SQL"
# new's physical order differs: LIMIT without ORDER BY picks other rows there
psql_new "$DB" -q -c "UPDATE q SET payload = payload WHERE id % 2 = 0" -c "VACUUM q"
# The same data on old alone: what old alone answers is the reference for the replies.
REF=${DB}_ref
psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF" -c "CREATE DATABASE $REF"
psql_old "$REF" -q -c "$SETUP_SQL"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the WITH writes"

# What one client sends, each a simple Query; the last two inside transaction blocks.
STMTS=(
    "WITH ins AS (INSERT INTO t (v) VALUES ('a') RETURNING id) SELECT id FROM ins"
    "WITH moved AS (DELETE FROM q WHERE id IN (SELECT id FROM q LIMIT 10) RETURNING *) INSERT INTO archive (id, payload) SELECT * FROM moved"
    "WITH u AS (UPDATE t SET touched = clock_timestamp() WHERE id <= 5 RETURNING id) SELECT count(*) FROM u"
    "WITH ins AS (INSERT INTO t (v) VALUES ('b'), ('c') RETURNING id, v) SELECT 1 WHERE false"
    "WITH d AS MATERIALIZED (DELETE FROM q WHERE id IN (SELECT id FROM q LIMIT 3) RETURNING id AS gone), i AS (INSERT INTO t AS x (v) SELECT 'gone ' || count(*) FROM d RETURNING x.id, v) SELECT * FROM i"
    "WITH ins AS (INSERT INTO t (v) VALUES ('plain')) UPDATE t SET v = v || '!' WHERE id = 1 RETURNING id, v"
)
script="DETAIL"
for sql in "${STMTS[@]}"; do
    script+=" ;; Q $sql ;; SEND ;; WAIT Z"
done
script+=" ;; Q BEGIN ;; SEND ;; WAIT Z"
for sql in "${STMTS[@]}"; do
    script+=" ;; Q $sql ;; SEND ;; WAIT Z"
done
script+=" ;; Q COMMIT ;; SEND ;; WAIT Z"
script+=" ;; Q BEGIN; ${STMTS[3]}; ${STMTS[4]}; ${STMTS[1]}; COMMIT ;; SEND ;; WAIT Z"
it_status_mark
via=$(timeout 60 python3 "$RAWPG" "$PROXY_PORT" "$DB" "$script") || it_failed "rawpg via pgdual: $via"
ref=$(timeout 60 python3 "$RAWPG" "$OLD_PORT" "$REF" "$script") || it_failed "rawpg on old: $ref"
assert_contains "$via" "C INSERT 0 10" "the archive INSERT's tag"
assert_contains "$via" "D 21" "the serial id made up in the WITH INSERT (old's first new id)"
assert_eq "$ref" "$via" "every reply byte-identical to old alone's (rows, fields, tags, no pgdual column)"
[[ "$ref" == "$via" ]] || diff <(echo "$ref") <(echo "$via") >&2 || true
assert_delta nondeterministic_writes_total -eq 0 "pinned WITH writes are not counted"
assert_delta pinned_writes_total -eq 15 "the secondary ran each of the 15 pinned"
assert_eq "in_sync" "$(it_status secondary_state)" "new stays in_sync"
for tb in t q archive; do
    same "$tb" "$tb identical on old and new (every column)"
done
assert_eq "30" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM archive")" "30 rows archived"

# --- pgdual's table after DISCARD TEMP / DISCARD ALL, and a read-only transaction -------------
it_status_mark
psql_proxy "$DB" -q -c "${STMTS[0]}" -c "DISCARD TEMP" -c "${STMTS[0]}" -c "DISCARD ALL" \
    -c "BEGIN" -c "${STMTS[1]}" -c "COMMIT" >/dev/null
assert_delta nondeterministic_writes_total -eq 0 "after DISCARD TEMP and DISCARD ALL: still pinned"
assert_delta pinned_writes_total -eq 3 "all three ran pinned on the secondary"
same t "t identical on old and new"
same archive "archive identical on old and new"
out=$(psql_proxy "$DB" -c "BEGIN READ ONLY" -c "${STMTS[0]}" 2>&1 || true)
want=$(psql_old "$REF" -c "BEGIN READ ONLY" -c "${STMTS[0]}" 2>&1 || true)
assert_contains "$out" "ERROR:  cannot execute SELECT in a read-only transaction" \
    "a read-only transaction: PostgreSQL's own error (pgdual's table could not be made there)"
assert_eq "$(tail -n 1 <<<"$want")" "$(tail -n 1 <<<"$out")" "the same answer as old alone"

# --- what is not pinned stays counted -------------------------------------------------------
it_status_mark
# The extended protocol: pgdual pins WITH queries in a simple Query only.
printf '%s\n' $'P\tc\tWITH ins AS (INSERT INTO t (v) VALUES ($1) RETURNING id) SELECT id FROM ins' \
    $'E\tc\text' | timeout 60 "$PQSCRIPT" "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB" \
    >/dev/null
assert_delta nondeterministic_writes_total -eq 1 "a WITH INSERT through Parse/Bind/Execute: counted"
assert_eq "diverged" "$(it_status secondary_state)" "and new is out of in_sync"
it_status_mark
psql_proxy "$DB" -q -c "WITH u AS (UPDATE t SET touched = now() FROM q WHERE q.id = t.id RETURNING q.id) SELECT count(*) FROM u" >/dev/null
assert_delta nondeterministic_writes_total -eq 1 "a WITH UPDATE ... FROM (its RETURNING may read q): counted"
assert_contains "$(cat "$IT_TMP/pgdual.log")" "RETURNING reads more than its row" "with its reason"
psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF"
it_proxy_stop
