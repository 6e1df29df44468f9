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
setup() {
    psql_proxy "$DB" -q <<'SQL'
DROP TABLE IF EXISTS t, q, archive;
CREATE TABLE t (id serial PRIMARY KEY, v text, touched timestamptz, r float8 DEFAULT random());
CREATE TABLE q (id int PRIMARY KEY, payload text);
CREATE TABLE archive (aid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id int, payload text,
    moved_at timestamptz DEFAULT clock_timestamp());
INSERT INTO t (v, touched, r) SELECT 'v' || g, '2020-01-01', 0 FROM generate_series(1, 20) g;
INSERT INTO q SELECT g, 'p' || g FROM generate_series(1, 60) g;
SQL
    # new's physical order differs: LIMIT without ORDER BY picks other rows there
    psql_new "$DB" -q -c "UPDATE q SET payload = payload WHERE id % 2 = 0" -c "VACUUM q"
}
setup
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the WITH writes"

# The statements, as one client would send them (each one a simple Query).
STMTS=(
    "WITH ins AS (INSERT INTO t (v) VALUES ('a') RETURNING id) SELECT id FROM ins"
    "WITH moved AS (DELETE FROM q WHERE id IN (SELECT id FROM q LIMIT 10) RETURNING *) INSERT INTO archive (id, payload) SELECT * FROM moved"
    "WITH u AS (UPDATE t SET touched = clock_timestamp() WHERE id <= 5 RETURNING id) SELECT count(*) FROM u"
    "WITH ins AS (INSERT INTO t (v) VALUES ('b'), ('c') RETURNING id, v) SELECT 1 WHERE false"
    "WITH d AS MATERIALIZED (DELETE FROM q WHERE id IN (SELECT id FROM q LIMIT 3) RETURNING id AS gone), i AS (INSERT INTO t (v) SELECT 'from ' || gone FROM d RETURNING *) SELECT count(*) FROM i"
)
it_status_mark
for sql in "${STMTS[@]}"; do
    psql_proxy "$DB" -q -c "$sql" >/dev/null
done
psql_proxy "$DB" -q -c "BEGIN" -c "${STMTS[0]}" -c "${STMTS[1]}" -c "${STMTS[2]}" -c "COMMIT" >/dev/null
psql_proxy "$DB" -q -c "BEGIN; ${STMTS[3]}; ${STMTS[4]}; COMMIT" >/dev/null
assert_delta nondeterministic_writes_total -eq 0 "pinned WITH writes are not counted"
assert_delta pinned_writes_total -ge 7 "the secondary ran them pinned"
assert_eq "in_sync" "$(it_status secondary_state)" "new stays in_sync"
for tb in t q archive; do
    same "$tb" "$tb identical on old and new"
done
it_proxy_stop
