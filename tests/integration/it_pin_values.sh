#!/usr/bin/env bash
# tests/integration/it_pin_values.sh: values a pinned row's JSON cannot carry reach new exactly.
# A pinned write's rows travel to new as to_json(t.*); there a JSON null stored in a json or jsonb
# column printed as an SQL NULL does, and an array lost its lower bounds. Through pgdual, with
# new's database set to another DateStyle than old's (set there directly: pgdual mirrors only the
# client's SET), so a value that travelled as old's text of a date would land on another day:
# (A) INSERTs (simple protocol) of JSON nulls, SQL NULLs, a jsonb string "null", json with its own
#     spacing, arrays (multi-dimensional, of dates), a domain over jsonb whose CHECK looks at the
#     value: pinned, identical;
# (B) UPDATE ... SET jsonb = 'null' on rows picked by LIMIT, and INSERT ... ON CONFLICT DO UPDATE:
#     pinned, identical;
# (C) the extended protocol (prepared INSERT with parameters): pinned, identical;
# (D) a DELETE matching on a jsonb primary key holding a JSON null: pinned, identical;
# (E) a prepared INSERT executed after another session dropped a json column: the client's
#     INSERT succeeds as on old alone (review 18: it failed when the RETURNING named the column);
# (F) a data-modifying WITH query into such a table, both protocols: pinned, identical (SQL NULLs
#     included); one storing a JSON null or a json scalar: counted (its rows come back as JSON,
#     which new's json_populate_record unescapes; reviews 20 and 22); (G) the outer INSERT of a
#     query whose WITH query writes another table: pinned, identical, both protocols;
# (H) an array whose lower bounds are not 1 (only its text carries them, in each server's own
#     settings): counted, also in a table created in the same Query (an array type named _int4);
#     a prepared INSERT executed after an ALTER ... TYPE of such a column, or of a text column to
#     jsonb: counted (reviews 20 and 22: new got the old type's rule, or SQL NULL, silently).
# Before, A-D left new different (SQL NULL for JSON null, arrays from 1), in_sync.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"
PQSCRIPT=${PGDUAL_PQSCRIPT:-$(dirname "$PGDUAL_BIN")/tests/pqscript}
[[ -x "$PQSCRIPT" ]] || it_fail "pqscript not found at $PQSCRIPT (cmake --build build)"

DB=it_pin_values
it_createdb "$DB"
psql_new postgres -q -c "ALTER DATABASE $DB SET DateStyle = 'SQL, DMY'"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
pq() { timeout 60 "$PQSCRIPT" "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB"; }

# same_rows TABLE MSG: every row's text (record_out: an SQL NULL is empty, a JSON null prints
# null, arrays print their bounds, json its spacing) equal on old and new, read in one DateStyle.
same_rows() {
    local sql="SET DateStyle = ISO; SELECT md5(coalesce(string_agg(w_::text, ',' ORDER BY w_::text), '')) FROM $1 w_"
    local o n
    o=$(psql_old "$DB" -tA -c "$sql")
    n=$(psql_new "$DB" -tA -c "$sql")
    if [[ "$o" != "$n" ]]; then
        diff <(psql_old "$DB" -tA -c "SET DateStyle = ISO; SELECT w_::text FROM $1 w_ ORDER BY 1") \
            <(psql_new "$DB" -tA -c "SET DateStyle = ISO; SELECT w_::text FROM $1 w_ ORDER BY 1") >&2 || true
    fi
    assert_eq "$o" "$n" "$2"
}
check() { # MSG TABLE PINNED
    assert_eq "$3" "$(it_status_delta pinned_writes_total)" "$1: pinned"
    assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "$1: nothing counted"
    same_rows "$2" "$1: $2 identical on old and new"
}

psql_proxy "$DB" -q <<'SQL'
CREATE DOMAIN doc AS jsonb CHECK (VALUE IS NULL OR jsonb_typeof(VALUE) IN ('object', 'null'));
CREATE TABLE jv (id serial PRIMARY KEY, j json, b jsonb, d doc, a int[], da date[],
                 v text, at timestamptz DEFAULT now());
CREATE TABLE jk (k jsonb PRIMARY KEY, n int);
CREATE TABLE js (id serial PRIMARY KEY, j json);
INSERT INTO jk VALUES ('null', 1), ('{"a": 1}', 2), ('"null"', 3), ('[]', 4);
SQL

# --- A ----------------------------------------------------------------------------------------
it_status_mark
psql_proxy "$DB" -q <<'SQL'
INSERT INTO jv (j, b, d, a, da, v) VALUES
  ('null', 'null', 'null', '{1,2}', '{2026-01-02}', 'json nulls'),
  (NULL, NULL, NULL, NULL, NULL, 'SQL NULLs'),
  ('{ "a" :  [1,  null] }', '"null"', '{"k": null}', '{}', '{}', 'spacing, a string "null", empty'),
  ('  null  ', '{"x": [null]}', NULL, '{{1,2},{3,4}}', '{2026-03-04,NULL}', 'spaced null, 2-d'),
  ('[null, {"n": null}]', '[]', '{}', '{5}', '{2026-05-06,2026-07-08}', 'nested nulls');
SQL
check "A: INSERT of JSON nulls and arrays" jv 1
assert_eq "t|f|t" "$(psql_new "$DB" -tA -c "SELECT j IS NOT NULL, b IS NULL, b = 'null' FROM jv WHERE id = 1")" \
    "A: new holds a JSON null (not an SQL NULL) where old does"

# --- B ----------------------------------------------------------------------------------------
it_status_mark
psql_proxy "$DB" -q <<'SQL'
UPDATE jv SET b = 'null', d = 'null', a = '{7,8}', da = '{2026-12-31}' WHERE id IN (SELECT id FROM jv ORDER BY id DESC LIMIT 2);
INSERT INTO jv (id, j, b, v) VALUES (2, 'null', '"x"', 'upserted') ON CONFLICT (id) DO UPDATE SET j = EXCLUDED.j, b = 'null', at = now();
SQL
check "B: UPDATE by LIMIT and ON CONFLICT DO UPDATE" jv 2

# --- C ----------------------------------------------------------------------------------------
it_status_mark
pq >"$IT_TMP/c.out" <<'EOF'
P	ins	INSERT INTO jv (j, b, a, v) VALUES ($1::json, $2::jsonb, $3::int[], 'extended')
E	ins	null	null	{1,2,3}
E	ins	\N	"null"	\N
E	ins	{ "s" : 1 }	{"t": null}	{9}
EOF
assert_eq "3" "$(grep -c "COMMAND_OK	INSERT 0 1" "$IT_TMP/c.out")" "C: the prepared INSERTs ran"
check "C: the extended protocol" jv 3

# --- D ----------------------------------------------------------------------------------------
it_status_mark
psql_proxy "$DB" -q -c "DELETE FROM jk WHERE k IN (SELECT k FROM jk ORDER BY n LIMIT 1)"
check "D: DELETE matched on a jsonb key holding a JSON null" jk 1
assert_eq "3" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM jk")" "D: new deleted the row old did"

# --- G: the outer statement of a query with a data-modifying WITH, both protocols -------------
it_status_mark
psql_proxy "$DB" -q -c "WITH w AS (UPDATE jk SET n = n + 10 WHERE n = 2 RETURNING n) INSERT INTO jv (b, a, v) SELECT 'null', '{1}', 'outer simple' FROM w" >/dev/null
pq >"$IT_TMP/g.out" <<'EOF'
X	WITH w AS (UPDATE jk SET n = n + 10 WHERE n = 3 RETURNING n) INSERT INTO jv (b, a, v) SELECT $1::jsonb, '{1}', 'outer extended' FROM w	null
EOF
assert_eq "1" "$(grep -c "COMMAND_OK	INSERT 0 1" "$IT_TMP/g.out")" "G: the extended-protocol WITH query ran"
check "G: the outer INSERT of a query with a WITH UPDATE" jv 2
same_rows jk "G: jk identical on old and new"

# --- E ----------------------------------------------------------------------------------------
pq >"$IT_TMP/e.out" <<'EOF' &
P	ins2	INSERT INTO jv (b, v) VALUES ($1::jsonb, 'after drop')
E	ins2	null
Q	SELECT pg_sleep(2)
E	ins2	null
EOF
pq_pid=$!
sleep 1
psql_proxy "$DB" -q -c "ALTER TABLE jv DROP COLUMN j"
wait "$pq_pid" || it_fail "pqscript: $(cat "$IT_TMP/e.out")"
assert_eq "2" "$(grep -c "COMMAND_OK	INSERT 0 1" "$IT_TMP/e.out")" \
    "E: a prepared INSERT ran before and after another session dropped a json column"
assert_eq "2" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM jv WHERE v = 'after drop'")" "E: old holds both rows"

# --- F ----------------------------------------------------------------------------------------
it_status_mark
psql_proxy "$DB" -q -c "WITH w AS (INSERT INTO jv (b, d, v) VALUES ('{\"k\": 1}', '{}', 'with') RETURNING id) SELECT count(*) FROM w" >/dev/null
pq >"$IT_TMP/f.out" <<'EOF'
X	WITH w AS (INSERT INTO jv (b, v) VALUES ($1::jsonb, 'with extended') RETURNING id) SELECT count(*) FROM w	[1, null]
EOF
assert_eq "1" "$(grep -c "TUPLES_OK" "$IT_TMP/f.out")" "F: the extended-protocol WITH query ran"
# (E's row after the DROP went verbatim, counted: its clock differs on new)
check "F: a WITH write of json/jsonb values and SQL NULLs" "(SELECT * FROM jv WHERE v LIKE 'with%')" 2
it_status_mark
psql_proxy "$DB" -q -c "WITH w AS (INSERT INTO jv (b, v) VALUES ('null', 'with null') RETURNING id) SELECT count(*) FROM w" >/dev/null
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "F: a WITH write of a JSON null: counted"
it_status_mark
psql_proxy "$DB" -q -c "WITH w AS (INSERT INTO js (j) VALUES ('\"a\\u00e9\"') RETURNING id) SELECT count(*) FROM w" >/dev/null
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "F: a WITH write of a json scalar (new would unescape it): counted"

# --- H ----------------------------------------------------------------------------------------
it_status_mark
psql_proxy "$DB" -q -c "INSERT INTO jv (b, a, v) VALUES ('{}', '[0:1]={1,2}', 'bounds')"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "H: an array from 0: counted"
assert_eq 0 "$(it_status_delta pinned_writes_total)" "H: ... not pinned"
assert_eq "0" "$(psql_old "$DB" -tA -c "SELECT array_lower(a, 1) FROM jv WHERE v = 'bounds'")" \
    "H: old stored the client's array"
it_status_mark
psql_proxy "$DB" -q -c "CREATE TABLE made (id serial PRIMARY KEY, f _int4); INSERT INTO made (f) VALUES ('[0:1]={1,2}')"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "H: ... in a table made in the same Query (_int4): counted"
psql_proxy "$DB" -q -c "CREATE TABLE retyped (id serial PRIMARY KEY, a int[], j jsonb)"
it_status_mark
pq >"$IT_TMP/h.out" <<'EOF'
P	ins3	INSERT INTO retyped (a, j) VALUES ($1, json_build_object('b', 1, 'a', 2))
E	ins3	{1}
Q	ALTER TABLE retyped ALTER a TYPE text, ALTER j TYPE json
E	ins3	[0:1]={1,2}
EOF
assert_eq "2" "$(grep -c "COMMAND_OK	INSERT 0 1" "$IT_TMP/h.out")" "H: the prepared INSERT ran before and after ALTER ... TYPE"
assert_eq 1 "$(it_status_delta pinned_writes_total)" "H: pinned before the ALTER"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "H: counted after it (the types changed)"
# ... also when the table had no such column when the statement was prepared (review 22)
psql_proxy "$DB" -q -c "CREATE TABLE plainly (id serial PRIMARY KEY, v text)"
it_status_mark
pq >"$IT_TMP/h2.out" <<'EOF'
P	ins4	INSERT INTO plainly (v) VALUES ($1::jsonb)
E	ins4	{}
Q	ALTER TABLE plainly ALTER v TYPE jsonb USING v::jsonb
E	ins4	null
EOF
assert_eq "2" "$(grep -c "COMMAND_OK	INSERT 0 1" "$IT_TMP/h2.out")" "H: a prepared INSERT into a text column ran before and after its ALTER to jsonb"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "H: counted after it (the types changed)"
assert_eq "t" "$(psql_old "$DB" -tA -c "SELECT v = 'null' FROM plainly WHERE id = 2")" "H: old stored a JSON null"
# ... but a change of type that pinning does not depend on (int to bigint) counts nothing (review
# 23: comparing type OIDs counted it, and every write after SET primary = new to a table with a
# user type, whose OIDs differ between the servers)
psql_proxy "$DB" -q -c "CREATE TYPE mood AS ENUM ('ok', 'sad')" \
    -c "CREATE TABLE widened (id serial PRIMARY KEY, n int, m mood, at timestamptz DEFAULT now())"
it_status_mark
pq >"$IT_TMP/h3.out" <<'EOF'
P	ins5	INSERT INTO widened (n, m) VALUES ($1::int, 'ok')
E	ins5	1
Q	ALTER TABLE widened ALTER n TYPE bigint
E	ins5	2
EOF
assert_eq "2" "$(grep -c "COMMAND_OK	INSERT 0 1" "$IT_TMP/h3.out")" "H: a prepared INSERT ran before and after ALTER ... TYPE bigint"
assert_eq 2 "$(it_status_delta pinned_writes_total)" "H: ... pinned both times"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "H: ... nothing counted"
same_rows widened "H: widened identical on old and new"

it_proxy_stop
it_check_sanitizer_log
it_pass
