#!/usr/bin/env bash
# tests/integration/it_psql.sh: psql through pgdual: DDL, DML, multi-statement simple queries, an
# error inside a transaction, a NOTICE, and \copy of 100,000 rows in and out.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

DB=it_psql
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start

# Both sides agree on a value: old always, new only when pgdual mirrors to it.
check_both() {
    local expected=$1 sql=$2 msg=$3
    assert_eq "$expected" "$(psql_old "$DB" -tA -c "$sql")" "$msg (old)"
    if it_mirrors; then
        assert_eq "$expected" "$(psql_new "$DB" -tA -c "$sql")" "$msg (new, mirrored)"
    fi
}

# --- DDL ---------------------------------------------------------------------------------------
assert_ok "CREATE TABLE through pgdual" -- psql_proxy "$DB" \
    -c "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int)"
assert_ok "CREATE INDEX through pgdual" -- psql_proxy "$DB" \
    -c "CREATE INDEX items_name_idx ON items (name)"
assert_ok "ALTER TABLE through pgdual" -- psql_proxy "$DB" \
    -c "ALTER TABLE items ADD COLUMN price numeric(10,2) NOT NULL DEFAULT 0"
check_both "id,name,qty,price" \
    "SELECT string_agg(column_name, ',' ORDER BY ordinal_position)
       FROM information_schema.columns WHERE table_name = 'items'" \
    "columns after CREATE + ALTER"
check_both "items_name_idx" \
    "SELECT indexname FROM pg_indexes WHERE tablename = 'items' AND indexname <> 'items_pkey'" \
    "index created"

# --- DML, command tags -------------------------------------------------------------------------
out=$(psql_proxy "$DB" -c "INSERT INTO items VALUES (1,'one',1,1.10),(2,'two',2,2.20),(3,'three',3,3.30)")
assert_eq "INSERT 0 3" "$out" "INSERT tag"
out=$(psql_proxy "$DB" -c "UPDATE items SET qty = qty * 10 WHERE id >= 2")
assert_eq "UPDATE 2" "$out" "UPDATE tag"
out=$(psql_proxy "$DB" -c "DELETE FROM items WHERE id = 1")
assert_eq "DELETE 1" "$out" "DELETE tag"
out=$(psql_proxy "$DB" -tA -c "SELECT id, name, qty, price FROM items ORDER BY id")
assert_eq $'2|two|20|2.20\n3|three|30|3.30' "$out" "SELECT through pgdual returns the rows"
check_both "2:50:5.50" "SELECT count(*) || ':' || sum(qty) || ':' || sum(price) FROM items" \
    "table content after DML"

# --- multi-statement simple query strings ------------------------------------------------------
out=$(psql_proxy "$DB" -tA -c "INSERT INTO items VALUES (10,'ten',10,10); SELECT count(*) FROM items")
assert_eq $'INSERT 0 1\n3' "$out" "multi-statement write + read in one Query"
out=$(psql_proxy "$DB" -tA -c "SELECT 1; SELECT 'two'; VALUES (3)")
assert_eq $'1\ntwo\n3' "$out" "multi-statement read-only Query returns every result"
out=$(psql_proxy "$DB" -tA -c "BEGIN; UPDATE items SET qty = 0 WHERE id = 10;
                                DELETE FROM items WHERE id = 3; COMMIT; SELECT sum(qty) FROM items")
assert_eq $'BEGIN\nUPDATE 1\nDELETE 1\nCOMMIT\n20' "$out" "BEGIN/UPDATE/DELETE/COMMIT in one Query"
check_both "2|20" "SELECT count(*), sum(qty) FROM items" "content after multi-statement Query"
# A failing statement in an implicit-transaction string undoes the whole string.
assert_fails "multi-statement Query with an error fails" -- psql_proxy "$DB" \
    -c "INSERT INTO items VALUES (200,'implicit',1,1); INSERT INTO items VALUES (2,'dup',1,1)"
assert_contains "$IT_LAST_OUT" "duplicate key" "the primary's error reaches the client"
check_both "0" "SELECT count(*) FROM items WHERE id = 200" "implicit transaction rolled back"

# --- error mid-transaction, then COMMIT --------------------------------------------------------
out=$(psql_proxy "$DB" -v ON_ERROR_STOP=0 2>&1 <<'SQL' || true
BEGIN;
INSERT INTO items VALUES (100, 'in-tx', 1, 1);
INSERT INTO items VALUES (2, 'duplicate', 1, 1);
INSERT INTO items VALUES (101, 'after-error', 1, 1);
COMMIT;
SQL
)
assert_contains "$out" "duplicate key value violates unique constraint" "error inside transaction"
assert_contains "$out" "current transaction is aborted" "statement after the error refused"
assert_match "$out" $'(^|\n)ROLLBACK($|\n)' "COMMIT of a failed transaction answers ROLLBACK"
check_both "0" "SELECT count(*) FROM items WHERE id IN (100, 101)" \
    "nothing of the failed transaction applied"
out=$(psql_proxy "$DB" -tA -c "SELECT count(*) FROM items")
assert_eq "2" "$out" "session usable after the failed transaction"

# --- NOTICE ------------------------------------------------------------------------------------
psql_proxy "$DB" -c "DO \$\$BEGIN RAISE NOTICE 'hello from %', 'it_psql'; END\$\$" \
    >"$IT_TMP/notice.out" 2>"$IT_TMP/notice.err"
assert_contains "$(cat "$IT_TMP/notice.err")" "NOTICE:  hello from it_psql" "NOTICE reaches the client"
assert_eq "1" "$(grep -c 'hello from it_psql' "$IT_TMP/notice.err")" "NOTICE delivered exactly once"
assert_eq "DO" "$(cat "$IT_TMP/notice.out")" "DO command tag"

# --- \copy 100,000 rows in and out -------------------------------------------------------------
SRC=$IT_TMP/copy_src.tsv
OUT=$IT_TMP/copy_out.tsv
awk 'BEGIN { for (i = 1; i <= 100000; i++) printf "%d\tname-%d\t%d\n", i, i, (i * 7) % 1000 }' >"$SRC"
expected=$(awk -F'\t' '{ n++; s += $3 } END { printf "%d|%d", n, s }' "$SRC")
assert_ok "create copy table" -- psql_proxy "$DB" \
    -c "CREATE TABLE copytest (id int PRIMARY KEY, name text NOT NULL, val int NOT NULL)"
out=$(psql_proxy "$DB" -c "\\copy copytest FROM '$SRC'")
assert_eq "COPY 100000" "$out" "\\copy FROM through pgdual"
check_both "$expected" "SELECT count(*), sum(val) FROM copytest" "copied rows count and sum"
out=$(psql_proxy "$DB" -c "\\copy (SELECT id, name, val FROM copytest ORDER BY id) TO '$OUT'")
assert_eq "COPY 100000" "$out" "\\copy TO through pgdual"
assert_eq "$(md5sum <"$SRC")" "$(md5sum <"$OUT")" "\\copy TO output identical to the source file"

# --- psql's describe commands are reads (their catalog functions are built-ins) -----------------
psql_proxy "$DB" -q -c "CREATE STATISTICS copy_stats ON id, val FROM copytest"
state_before=$(it_status secondary_state)
it_status_mark
for cmd in '\d copytest' '\d+ copytest' '\df' '\l' '\dT' '\dD' '\db' '\dn' '\du' '\dv'; do
    psql_proxy "$DB" -c "$cmd" >/dev/null || it_failed "psql $cmd through pgdual"
done
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "psql's \\d, \\df, \\l...: nothing counted"
assert_eq "$state_before" "$(it_status secondary_state)" "psql's describe commands leave new's state ($state_before)"

it_proxy_stop
