#!/usr/bin/env bash
# tests/integration/it_pin_cte.sh: data-modifying WITH queries are pinned (a simple Query): a
# serial id made up in a WITH INSERT read by the outer SELECT, rows picked by LIMIT in a WITH
# DELETE moved into an archive with its own defaults, a WITH UPDATE of now() counted by the
# outer SELECT, a WITH INSERT whose outer statement returns no row; in and out of transaction
# blocks, with the tables' physical order made different on new first. Old and new stay
# identical (every column), the client gets the bytes old alone sends (compared with a direct
# connection to old over the same data), nondeterministic_writes_total does not move. What
# cannot be pinned (a WITH UPDATE ... FROM) stays counted, never silent.
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
same() { it_same "$DB" "$@"; }
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

# --- a role switch in the session: pgdual's table stays usable (review 14, finding 1) ----------
ROLE_A=it_pin_cte_a ROLE_B=it_pin_cte_b
for side in psql_old psql_new; do
    for r in $ROLE_A $ROLE_B; do
        $side "$DB" -q -c "DO \$\$BEGIN CREATE ROLE $r; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$" \
            -c "GRANT ALL ON t, t_id_seq TO $r" -c "GRANT TEMP ON DATABASE $DB TO $r"
    done
done
it_status_mark
out=$(psql_proxy "$DB" -v ON_ERROR_STOP=1 -tA -c "SET ROLE $ROLE_A" \
    -c "WITH x AS (INSERT INTO t (v) VALUES ('role a') RETURNING id) SELECT count(*) FROM x" \
    -c "SET ROLE $ROLE_B" \
    -c "WITH x AS (INSERT INTO t (v) VALUES ('role b') RETURNING id) SELECT count(*) FROM x" \
    -c "BEGIN" -c "SET LOCAL ROLE $ROLE_A" \
    -c "WITH x AS (INSERT INTO t (v) VALUES ('local a') RETURNING id) SELECT count(*) FROM x" \
    -c "COMMIT" -c "RESET ROLE" \
    -c "WITH x AS (INSERT INTO t (v) VALUES ('reset') RETURNING id) SELECT count(*) FROM x" 2>&1) ||
    it_failed "WITH writes across SET ROLE failed: $out"
assert_eq "1 1 1 1" "$(grep -x '[0-9]*' <<<"$out" | xargs)" "each WITH write answered across role switches"
assert_delta nondeterministic_writes_total -eq 0 "and each was pinned, none counted"
same t "t identical on old and new after the role switches"
for side in psql_old psql_new; do
    $side "$DB" -q -c "DROP OWNED BY $ROLE_A, $ROLE_B" -c "DROP ROLE $ROLE_A" -c "DROP ROLE $ROLE_B"
done

# --- what PostgreSQL refuses stays refused (review 14, finding 3) ------------------------------
noret="WITH x AS (INSERT INTO t (v) VALUES ('noret')) SELECT count(*) FROM x"
out=$(psql_proxy "$DB" -tA -c "$noret" 2>&1 || true)
assert_contains "$out" "ERROR:" "a reference to a WITH write without RETURNING fails through pgdual"
srf="WITH x AS (INSERT INTO t (v) VALUES ('srf') RETURNING generate_series(1, 3)) SELECT * FROM x"
out=$(psql_proxy "$DB" -tA -c "$srf" 2>&1 || true)
assert_contains "$out" "set-returning functions are not allowed in RETURNING" \
    "a set-returning function in a WITH write's RETURNING: PostgreSQL's own error"
alias="WITH x (a) AS (INSERT INTO t (v) VALUES ('alias')) SELECT 1"
out=$(psql_proxy "$DB" -tA -c "$alias" 2>&1 || true)
assert_contains "$out" "has 0 columns available but 1 columns specified" \
    "a column list on a WITH write without RETURNING: PostgreSQL's own error"
assert_eq "0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM t WHERE v IN ('noret', 'srf', 'alias')")" \
    "and none of these statements wrote a row on old"

# --- what is not pinned stays counted -------------------------------------------------------
it_status_mark
# The extended protocol pins them too (it_pin_cte_ext.sh has the forms).
printf '%s\n' $'P\tc\tWITH ins AS (INSERT INTO t (v) VALUES ($1) RETURNING id) SELECT id FROM ins' \
    $'E\tc\text' | timeout 60 "$PQSCRIPT" "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB" \
    >/dev/null
assert_delta nondeterministic_writes_total -eq 0 "a WITH INSERT through Parse/Bind/Execute: pinned"
assert_delta pinned_writes_total -eq 1 "...the secondary ran it pinned"
same t "t identical on old and new"

# --- a ROLLBACK TO ahead of a WITH write in the same Query ----------------------------------------
# A new session makes pgdual's table inside the block, after the savepoint; ROLLBACK TO drops it
# again before the second WITH write of that Query runs: that one must go verbatim (counted), not
# fail on the missing table (review: 42P01 and an aborted transaction old alone would commit).
it_status_mark
ins="WITH w AS (INSERT INTO t (v) VALUES ('sp') RETURNING id) SELECT id FROM w"
out=$(timeout 60 python3 "$IT_HARNESS_DIR/rawpg.py" "$PROXY_PORT" "$DB" \
    "Q BEGIN ;; SEND ;; WAIT Z ;; Q SAVEPOINT a ;; SEND ;; WAIT Z ;; Q $ins ;; SEND ;; WAIT Z ;; Q ROLLBACK TO a; $ins ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_not_contains "$out" "E 42P01" "no error about pgdual's table after ROLLBACK TO"
assert_contains "$out" "C COMMIT" "the transaction commits as on old alone"
if [[ "$(psql_old "$DB" -tA -c "SELECT id, v FROM t WHERE v = 'sp'")" == "$(psql_new "$DB" -tA -c "SELECT id, v FROM t WHERE v = 'sp'")" ]]; then
    it_pass "the WITH write after ROLLBACK TO: the same row on old and new"
else
    assert_delta nondeterministic_writes_total -ge 1 "the WITH write after ROLLBACK TO went verbatim: counted"
fi

# --- SAVEPOINT and ROLLBACK TO through the extended protocol (PgJDBC's savepoints) ----------------
# The ROLLBACK TO drops pgdual's table made after the savepoint; it was seen only in a Query, so
# the next WITH write failed with 42P01 and the client's transaction was lost (review 12e).
it_status_mark
out=$(timeout 60 python3 "$IT_HARNESS_DIR/rawpg.py" "$PROXY_PORT" "$DB" \
    "Q BEGIN ;; SEND ;; WAIT Z ;; P SAVEPOINT b ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; Q ${ins/\'sp\'/\'xsp1\'} ;; SEND ;; WAIT Z ;; P ROLLBACK TO SAVEPOINT b ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; Q ${ins/\'sp\'/\'xsp2\'} ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_not_contains "$out" "E 42P01" "extended ROLLBACK TO: no error about pgdual's table"
assert_contains "$out" "C COMMIT" "extended ROLLBACK TO: the transaction commits as on old alone"
assert_eq "$(psql_old "$DB" -tA -c "SELECT id, v FROM t WHERE v LIKE 'xsp%' ORDER BY id")" \
    "$(psql_new "$DB" -tA -c "SELECT id, v FROM t WHERE v LIKE 'xsp%' ORDER BY id")" \
    "extended ROLLBACK TO: the WITH write after it pinned, the same row on old and new"

# Pipelined: BEGIN still unanswered when pgdual makes its table for the first WITH write, so
# pgdual took the table for one made outside the block; a ROLLBACK TO dropped it unseen and the
# next WITH write failed with 42P01 (review of 009c48b).
it_status_mark
out=$(timeout 60 python3 "$IT_HARNESS_DIR/rawpg.py" "$PROXY_PORT" "$DB" \
    "P BEGIN ;; B ;; E ;; P SAVEPOINT c ;; B ;; E ;; S ;; Q ${ins/\'sp\'/\'psp1\'} ;; SEND ;; WAIT Z 2 ;; P ROLLBACK TO SAVEPOINT c ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; Q ${ins/\'sp\'/\'psp2\'} ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_not_contains "$out" "E 42P01" "pipelined BEGIN: no error about pgdual's table after ROLLBACK TO"
assert_contains "$out" "C COMMIT" "pipelined BEGIN: the transaction commits as on old alone"
if [[ "$(psql_old "$DB" -tA -c "SELECT id, v FROM t WHERE v LIKE 'psp%' ORDER BY id")" == "$(psql_new "$DB" -tA -c "SELECT id, v FROM t WHERE v LIKE 'psp%' ORDER BY id")" ]]; then
    it_pass "pipelined BEGIN: the same rows on old and new"
else
    assert_delta nondeterministic_writes_total -ge 1 "pipelined BEGIN: the rows differ, counted"
fi

it_status_mark
psql_proxy "$DB" -q -c "WITH u AS (UPDATE t SET touched = now() FROM q WHERE q.id = t.id RETURNING q.id) SELECT count(*) FROM u" >/dev/null
assert_delta nondeterministic_writes_total -eq 1 "a WITH UPDATE ... FROM (its RETURNING may read q): counted"
assert_contains "$(cat "$IT_TMP/pgdual.log")" "RETURNING reads more than its row" "with its reason"
psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF"
it_proxy_stop
