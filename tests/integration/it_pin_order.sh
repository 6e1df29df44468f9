#!/usr/bin/env bash
# tests/integration/it_pin_order.sh: values a write takes from rows in an order the server does
# not define are pinned, like rows picked by LIMIT: the source table's physical order is made
# different on new first (an UPDATE run there directly moves rows), then through pgdual
# (A) UPDATE ... FROM a join where several rows match one target row (PostgreSQL takes the first
#     the join meets);
# (B) INSERT ... SELECT string_agg / array_agg without an ORDER BY of their own;
# (C) INSERT ... SELECT row_number() OVER () (a window without ORDER BY);
# (D) INSERT ... SELECT DISTINCT ON (k) (the first row of each group);
# (E) the same with an ORDER BY of the aggregate's or window's own that ties (pgdual cannot tell
#     a total one, so any is pinned); DELETE ... USING (a row is deleted once whichever row
#     matched): not pinned, nothing counted.
# Every target table identical on old and new afterwards, nothing counted, in_sync. Before, A-D
# left new different, in_sync, nothing counted.
# (F) ALTER TABLE ... ADD COLUMN serial / identity fills the rows in physical order: counted (it
#     was silent before);
# (G) a transaction id (txid_current, pg_current_xact_id) or what a system catalog or view says
#     (pg_class, pg_stat_activity) stored by an INSERT: pinned (silent before);
# (H) INSERT ... SELECT ... ON CONFLICT DO NOTHING from a source with duplicate keys (the first
#     row read of each key is stored): pinned (silent before); a server setting
#     (current_setting('port')), xmin, tableoid, an ::oid cast stored by a write: pinned;
# (I) ALTER TABLE ... TYPE ... USING random(), EXECUTE p(random()) of a write not pinned (also
#     after a PREPARE of the name in the same Query, and through Parse), CREATE TABLE AS EXECUTE,
#     set_config() of a made-up value: counted (silent before); EXECUTE of a prepared read with
#     a WITH or FOR UPDATE, and a DEFAULT now() set beside a type change: not counted.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_order
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
same() { it_same "$DB" "$@"; }

psql_proxy "$DB" -q <<'SQL'
CREATE TABLE src (k int, v text);
INSERT INTO src SELECT g % 5, 'v' || g FROM generate_series(1, 40) g;
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, '' FROM generate_series(0, 4) g;
CREATE TABLE agg (id int PRIMARY KEY, s text, a text);
CREATE TABLE num (id int PRIMARY KEY, v text);
CREATE TABLE firsts (k int PRIMARY KEY, v text);
SQL
it_reorder_src "$DB"
check() { it_pinned_same "$DB" "$@"; }

it_status_mark
psql_proxy "$DB" -q -c "UPDATE t SET v = src.v FROM src WHERE src.k = t.id"
check "A: UPDATE ... FROM, several matches" t 1

it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO agg SELECT k, string_agg(v, ','), array_agg(v)::text FROM src GROUP BY k"
check "B: string_agg, array_agg" agg 1

it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO num SELECT row_number() OVER (), v FROM src"
check "C: row_number() OVER ()" num 1

it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO firsts SELECT DISTINCT ON (k) k, v FROM src"
check "D: DISTINCT ON" firsts 1

it_status_mark
psql_proxy "$DB" -q -c "TRUNCATE agg, num" \
    -c "INSERT INTO agg SELECT k, string_agg(v, ',' ORDER BY k), NULL FROM src GROUP BY k" \
    -c "INSERT INTO num SELECT row_number() OVER (ORDER BY k), v FROM src"
check "E: an ORDER BY with ties (k)" agg 2
same num "E: num identical"
it_status_mark
psql_proxy "$DB" -q -c "DELETE FROM firsts USING src WHERE src.k = firsts.k AND src.k < 2"
check "E: DELETE ... USING (a row is deleted once, whichever row matched)" firsts 0

# --- H: ON CONFLICT DO NOTHING keeps the first source row of each key -----------------------------
psql_proxy "$DB" -q -c "CREATE TABLE dedup (k int PRIMARY KEY, v text)"
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO dedup SELECT k, v FROM src ON CONFLICT DO NOTHING"
check "H: INSERT ... SELECT ... ON CONFLICT DO NOTHING from duplicate keys" dedup 1
assert_eq 5 "$(psql_new "$DB" -tA -c "SELECT count(*) FROM dedup")" "H: one row per key on new"
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO dedup VALUES (7, 'a'), (7, 'b') ON CONFLICT DO NOTHING"
check "H: a VALUES list (its order is the text's): not pinned" dedup 0
assert_eq in_sync "$(it_status secondary_state)" "new is in_sync"

# --- F: a serial or identity column added to a table with rows --------------------------------
for col in "s serial" "g int GENERATED ALWAYS AS IDENTITY"; do
    it_status_mark
    psql_proxy "$DB" -q -c "ALTER TABLE src ADD COLUMN $col"
    assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "F: ADD COLUMN $col counted"
done
assert_eq diverged "$(it_status secondary_state)" "F: new out of in_sync (src filled in another order)"
assert_contains "$(it_status reconcile_tables)" "*" "F: owed to the reconciliation"

# --- G: values of each server's own state stored by a write: pinned ------------------------------
psql_proxy "$DB" -q -c "CREATE TABLE outbox (id int PRIMARY KEY, note text)"
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO outbox VALUES (1, txid_current()::text)" \
    -c "INSERT INTO outbox VALUES (2, pg_current_xact_id()::text)" \
    -c "INSERT INTO outbox SELECT 3, relfilenode::text FROM pg_class WHERE relname = 'outbox'" \
    -c "INSERT INTO outbox SELECT 4, count(*)::text FROM pg_catalog.pg_stat_activity"
assert_eq 4 "$(it_status_delta pinned_writes_total)" "G: the four INSERTs pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "G: nothing counted"
same outbox "G: outbox identical (old's transaction ids, file node, session count)"
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO outbox SELECT 5, current_setting('port')" \
    -c "INSERT INTO outbox SELECT 6, xmin::text FROM outbox WHERE id = 1" \
    -c "INSERT INTO outbox SELECT 7, tableoid::text FROM outbox WHERE id = 1" \
    -c "INSERT INTO outbox VALUES (8, 'outbox'::regclass::oid::text)" \
    -c "SET app.note = 'same'" -c "INSERT INTO outbox VALUES (9, current_setting('app.note'))" \
    -c "INSERT INTO outbox VALUES (30, 'outbox'::regclass::int::text)"
assert_eq 5 "$(it_status_delta pinned_writes_total)" \
    "G: a server setting, xmin, tableoid, an ::oid cast, a regclass pinned (a custom setting is not)"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "G: nothing counted"
same outbox "G: outbox identical (old's port, row version, table OID)"

# --- I: values made up where pgdual cannot pin them: counted -------------------------------------
psql_proxy "$DB" -q -c "CREATE TABLE retyped (id int PRIMARY KEY, v int)" \
    -c "INSERT INTO retyped SELECT g, g FROM generate_series(1, 5) g" \
    -c "PREPARE ins AS INSERT INTO outbox VALUES (\$1, \$2)" \
    -c "PREPARE pick AS SELECT random() AS r"
for sql in "ALTER TABLE retyped ALTER COLUMN v TYPE float8 USING random()" \
    "EXECUTE ins(10, random()::text)" "CREATE TABLE picked AS EXECUTE pick" \
    "DEALLOCATE pick; PREPARE pick(int, text) AS INSERT INTO outbox VALUES (\$1, \$2); EXECUTE pick(12, random()::text)" \
    "SELECT set_config('app.r', random()::text, false)"; do
    it_status_mark
    psql_proxy "$DB" -q -c "PREPARE ins AS INSERT INTO outbox VALUES (\$1, \$2)" \
        -c "PREPARE pick AS SELECT random() AS r" -c "$sql"
    assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "I: $sql counted"
done
it_status_mark
psql_proxy "$DB" -q -c "PREPARE pick AS SELECT random() + \$1 AS r" -c "EXECUTE pick(random())" >/dev/null
psql_proxy "$DB" -q -c "PREPARE recent(float8) AS WITH r AS (SELECT * FROM outbox) SELECT count(*) FROM r WHERE \$1 < 2" \
    -c "EXECUTE recent(random())" -c "PREPARE locked(float8) AS SELECT id FROM outbox WHERE id = \$1::int FOR UPDATE" \
    -c "EXECUTE locked(random())" >/dev/null
psql_proxy "$DB" -q -c "CREATE TABLE ev (id int PRIMARY KEY, created_at timestamp)" \
    -c "ALTER TABLE ev ALTER COLUMN created_at TYPE timestamptz, ALTER COLUMN created_at SET DEFAULT now()"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" \
    "I: EXECUTE of a read (WITH, FOR UPDATE), a type changed beside a DEFAULT now() stored: nothing counted"
# The extended protocol (PgJDBC, Npgsql send every statement so): a Parse of the EXECUTE.
printf 'PREPARE insx(int, text) AS INSERT INTO outbox VALUES ($1, $2);\nEXECUTE insx(13, random()::text);\n' \
    >"$IT_TMP/exec.sql"
it_status_mark
pgbench -n -t 1 -M extended -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -f "$IT_TMP/exec.sql" "$DB" \
    >"$IT_TMP/exec.out" 2>&1 || it_fail "pgbench: $(cat "$IT_TMP/exec.out")"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "I: a Parse of EXECUTE ins(random()) counted"

it_proxy_stop
it_check_sanitizer_log
it_pass
