#!/usr/bin/env bash
# tests/integration/it_pin_values.sh: pinned rows carry every value exactly. The primary returns
# each written row as JSON, which cannot tell a JSON null in a json/jsonb column from SQL NULL, and
# drops an array's lower bounds: such columns travel wrapped (review 16). Through pgdual, into a
# table with a serial id (so every INSERT is pinned): jsonb and json JSON nulls, SQL NULLs, a
# json text with its own spacing and duplicate keys, arrays with lower bounds other than 1 (and
# 2-D), json text with its own spacing, a jsonb key; by INSERT, UPDATE ... SET = now(), a data-modifying WITH query, and the
# extended protocol. Both tables identical on old and new afterwards (their text, which shows
# a JSON null as null and SQL NULL as nothing), nothing counted. Before, new held SQL NULL for
# every JSON null and lost the bounds, in_sync.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_values
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
same() { it_same "$DB" "$@"; }

psql_proxy "$DB" -q <<'SQL'
CREATE TABLE docs (id serial PRIMARY KEY, j jsonb, js json, a int[], d date[], t timestamptz);
CREATE TABLE jkeys (k jsonb PRIMARY KEY, v int, t timestamptz DEFAULT now());
SQL

it_status_mark
psql_proxy "$DB" -q <<'SQL'
INSERT INTO docs (j, js, a, d) VALUES ('null', 'null', '[0:1]={1,2}', '[2:2]={2024-01-02}'),
  (NULL, NULL, NULL, NULL),
  ('{"k": [1, null]}', '{"b": 1,  "a":2, "a":3}', '{{1,2},{3,4}}', '{2024-12-31}'),
  ('"s"', '[null]', '[-3:-2]={7,8}', '{}');
UPDATE docs SET j = 'null', js = '  null ', t = now() WHERE id = 2;
WITH w AS (INSERT INTO docs (j, a) VALUES ('null', '[5:5]={9}') RETURNING id) SELECT count(*) FROM w;
INSERT INTO jkeys (k, v) VALUES ('null', 1), ('{"a": null}', 2);
UPDATE jkeys SET v = v + 1, t = now() WHERE k = 'null';
DELETE FROM jkeys WHERE k = '{"a": null}' AND t < now() + interval '1 day' AND ctid = ctid;
SQL
printf 'INSERT INTO docs (j, js, a) VALUES (%s, %s, %s);\n' "'null'" "'null'" "'[0:0]={1}'" >"$IT_TMP/ext.sql"
pgbench -n -t 2 -M prepared -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -f "$IT_TMP/ext.sql" "$DB" \
    >"$IT_TMP/ext.out" 2>&1 || it_fail "pgbench: $(cat "$IT_TMP/ext.out")"

assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "nothing counted"
[[ "$(it_status_delta pinned_writes_total)" -ge 8 ]] && it_pass "the writes were pinned" ||
    it_failed "the writes were pinned: $(it_status_delta pinned_writes_total)"
same docs "docs identical on old and new (JSON nulls, SQL NULLs, json text, array bounds)"
same jkeys "jkeys identical on old and new (a jsonb key holding a JSON null)"
assert_eq "2|1" "$(psql_new "$DB" -tA -c "SELECT count(*) FILTER (WHERE j = 'null'), count(*) FILTER (WHERE a IS NULL) FROM docs WHERE id <= 2")" \
    "new holds JSON nulls where old has them, and SQL NULL where old has it"
assert_eq "  null " "$(psql_new "$DB" -tA -c "SELECT js FROM docs WHERE id = 2")" "new keeps json's own spacing"
assert_eq "0" "$(psql_new "$DB" -tA -c "SELECT array_lower(a, 1) FROM docs WHERE id = 1")" \
    "new keeps the array's lower bound 0"
assert_eq in_sync "$(it_status secondary_state)" "new is in_sync"

it_proxy_stop
it_check_sanitizer_log
it_pass
