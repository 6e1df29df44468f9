#!/usr/bin/env bash
# tests/integration/it_verify.sh: pgdual-verify against two real clusters (identical, differences,
# repair, bytes on the wire, schema differences, bad input). Prints "N passed, N failed" last.
set -u
CL=${PGDUAL_TEST_CLUSTER:?PGDUAL_TEST_CLUSTER unset}
BIN=${PGDUAL_VERIFY_BIN:?PGDUAL_VERIFY_BIN unset}
# shellcheck disable=SC1091
. "$CL/cluster.env"
export PGHOST PGUSER
HERE=$(cd "$(dirname "$0")" && pwd)
DB=vfy_$$_$(date +%s)
W=$(mktemp -d /tmp/it_verify.XXXXXX)
PASS=0 FAIL=0
RELAYS=()

ok()   { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL - $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
q()    { psql -X -q -v ON_ERROR_STOP=1 -p "$1" -d "$DB" -Atc "$2"; }
both() { q "$OLD_PORT" "$1" && q "$NEW_PORT" "$1"; }
ci()   { echo "host=127.0.0.1 port=$1 user=$PGUSER dbname=$DB"; }
cleanup() {
    for p in "${RELAYS[@]}"; do kill "$p" 2>/dev/null; done
    for port in "$OLD_PORT" "$NEW_PORT"; do
        psql -X -q -p "$port" -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
    done
    rm -rf "$W"
}
trap cleanup EXIT

for port in "$OLD_PORT" "$NEW_PORT"; do
    psql -X -q -p "$port" -d postgres -c "CREATE DATABASE $DB" || { echo "0 passed, 1 failed"; exit 1; }
done

SETUP=$(cat <<'SQL'
SET synchronous_commit = off;
CREATE TABLE big (id int PRIMARY KEY, a int, b text, c timestamptz, n int);
INSERT INTO big SELECT g, g * 7, 'row ' || g || repeat('x', 20),
       '2020-01-01'::timestamptz + g * interval '1 minute', CASE WHEN g % 10 = 0 THEN NULL ELSE g END
  FROM generate_series(1, 1000000) g;
CREATE TABLE comp (region text, day date, qty int, note text, PRIMARY KEY (region, day));
INSERT INTO comp SELECT 'region-' || (g % 50), date '2000-01-01' + g / 50, g, repeat(md5(g::text), 40)
  FROM generate_series(0, 49999) g;
CREATE TABLE uu (id uuid PRIMARY KEY, v numeric, tags text[], j jsonb);
INSERT INTO uu SELECT md5('u' || g)::uuid, g / 3.0, ARRAY['t' || g, 'it''s'], jsonb_build_object('g', g)
  FROM generate_series(1, 100000) g;
CREATE TABLE nokey (a int, b text);
INSERT INTO nokey SELECT g % 1000, 'k' || g FROM generate_series(1, 20000) g;
ANALYZE;
SQL
)
( q "$OLD_PORT" "$SETUP" ) & P1=$!
( q "$NEW_PORT" "$SETUP" ) & P2=$!
wait $P1 && wait $P2 || { bad "setup"; echo "$PASS passed, $FAIL failed"; exit 1; }

OLD=$(ci "$OLD_PORT") NEW=$(ci "$NEW_PORT")
T="--tables big,comp,uu,nokey"

# 1. identical tables -> exit 0, "identical"
"$BIN" --old "$OLD" --new "$NEW" $T --json "$W/same.json" >"$W/same.out" 2>"$W/same.err"; rc=$?
check "identical tables exit 0" "[ $rc -eq 0 ]"
check "identical tables say identical" "grep -q 'result: identical' '$W/same.out'"
cat "$W/same.out"

# 2. bytes from the databases to the tool, measured by a counting relay in front of each side
for side in old new; do
    port=$OLD_PORT; [ $side = new ] && port=$NEW_PORT
    python3 "$HERE/it_verify_relay.py" "$port" "$W/$side.port" "$W/$side.bytes" & RELAYS+=($!)
done
for _ in $(seq 50); do [ -s "$W/old.port" ] && [ -s "$W/new.port" ] && break; sleep 0.1; done
"$BIN" --old "$(ci "$(cat "$W/old.port")")" --new "$(ci "$(cat "$W/new.port")")" --tables big \
    --stats >"$W/relay.out" 2>"$W/relay.err"; rc=$?
sleep 0.5
bo=$(cat "$W/old.bytes") bn=$(cat "$W/new.bytes")
echo "relay: old->tool $bo bytes, new->tool $bn bytes (1M-row table); tool's own count:"
grep total "$W/relay.err"
check "1M identical rows: exit 0 through relay" "[ $rc -eq 0 ]"
check "1M identical rows: < 1 MiB from databases ($bo + $bn)" "[ $((bo + bn)) -lt 1048576 ]"

# 3. differences made directly on new
q "$NEW_PORT" "DELETE FROM big WHERE id = 500000;
  INSERT INTO big VALUES (1000001, 1, 'inserted', now(), 1);
  UPDATE big SET n = 42 WHERE id = 123450;
  UPDATE comp SET note = overlay(note placing 'Z' from 600 for 1) WHERE region = 'region-7' AND day = '2000-01-08';
  UPDATE uu SET tags = ARRAY['t42', 'it''s!'] WHERE id = md5('u42')::uuid;
  UPDATE nokey SET b = 'changed' WHERE b = 'k77';"
"$BIN" --old "$OLD" --new "$NEW" $T --json "$W/diff.json" >"$W/diff.out" 2>"$W/diff.err"; rc=$?
cat "$W/diff.out"
check "differences exit 1" "[ $rc -eq 1 ]"
U42=$(q "$OLD_PORT" "SELECT md5('u42')::uuid")
python3 - "$W/diff.json" "$U42" >"$W/json.check" 2>&1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
got = set()
for t in d["tables"]:
    for x in t["differences"]:
        if x["kind"] == "multiset":
            got.add((t["table"], "multiset", x["missing_rows"], x["extra_rows"]))
        else:
            got.add((t["table"], x["kind"], tuple(sorted(x["key"].items()))))
want = {
    ("public.big", "missing", (("id", "500000"),)),
    ("public.big", "extra", (("id", "1000001"),)),
    ("public.big", "different", (("id", "123450"),)),
    ("public.comp", "different", (("day", "2000-01-08"), ("region", "region-7"))),
    ("public.uu", "different", (("id", sys.argv[2]),)),
    ("public.nokey", "multiset", 1, 1),
}
print("extra reported:", got - want, "not reported:", want - got)
sys.exit(0 if got == want and d["result"] == "different" else 1)
PY
check "json names exactly the changed keys" "[ $? -eq 0 ]"
cat "$W/json.check"

# 4. repair: print, then apply; old untouched, next verify identical
SUMSQL="SELECT (SELECT sum(hashtextextended(t::text, 0)) FROM big t) || '/' ||
  (SELECT sum(hashtextextended(t::text, 0)) FROM comp t) || '/' ||
  (SELECT sum(hashtextextended(t::text, 0)) FROM uu t) || '/' || (SELECT sum(hashtextextended(t::text, 0)) FROM nokey t)"
before=$(q "$OLD_PORT" "$SUMSQL")
"$BIN" --old "$OLD" --new "$NEW" $T --repair >"$W/repair.sql" 2>"$W/repair.err"; rc=$?
check "--repair exits 1 and prints upsert/delete" \
    "[ $rc -eq 1 ] && grep -q 'ON CONFLICT' '$W/repair.sql' && grep -q '^DELETE FROM' '$W/repair.sql'"
"$BIN" --old "$OLD" --new "$NEW" $T --repair --apply >"$W/apply.out" 2>"$W/apply.err"; rc=$?
tail -6 "$W/apply.out"; cat "$W/apply.err"
check "--repair --apply ends identical (exit 0)" "[ $rc -eq 0 ]"
"$BIN" --old "$OLD" --new "$NEW" $T >"$W/after.out" 2>&1; rc=$?
check "verify after repair exits 0" "[ $rc -eq 0 ]"
after=$(q "$OLD_PORT" "$SUMSQL")
check "old untouched by repair" "[ '$before' = '$after' ]"

# 4b. the printed script sets the formats its literals are in: run by a psql session in another
# TimeZone and DateStyle, its DELETE of a timestamptz key still finds the extra row (review 17:
# the key's text condition read under Berlin time matched nothing).
q "$OLD_PORT" "CREATE TABLE ev (at timestamptz PRIMARY KEY, v int); INSERT INTO ev VALUES ('2024-01-02 00:00:00+00', 1)"
q "$NEW_PORT" "CREATE TABLE ev (at timestamptz PRIMARY KEY, v int); INSERT INTO ev VALUES ('2024-01-02 00:00:00+00', 1), ('2024-01-03 00:00:00+00', 2)"
"$BIN" --old "$OLD" --new "$NEW" --tables ev --repair >"$W/ev.sql" 2>&1
PGTZ=Europe/Berlin PGDATESTYLE='SQL, DMY' psql -X -q -v ON_ERROR_STOP=1 -p "$NEW_PORT" -d "$DB" \
    -f "$W/ev.sql" >"$W/ev.out" 2>&1
check "a printed repair run under another TimeZone and DateStyle deletes the extra row" \
    "'$BIN' --old '$OLD' --new '$NEW' --tables ev >/dev/null 2>&1"

# 5. schema differences are reported before data is compared
q "$OLD_PORT" "CREATE TABLE typed (id int PRIMARY KEY, v int); CREATE TABLE only_old (id int PRIMARY KEY)"
q "$NEW_PORT" "CREATE TABLE typed (id int PRIMARY KEY, v bigint)"
"$BIN" --old "$OLD" --new "$NEW" --tables typed,only_old,comp >"$W/schema.out" 2>&1; rc=$?
cat "$W/schema.out"
check "schema differences exit 1" "[ $rc -eq 1 ]"
check "type mismatch reported" "grep -q 'typed: schema difference: column v: type integer on old, bigint on new' '$W/schema.out'"
check "missing table reported" "grep -q 'only_old: schema difference: table missing on new' '$W/schema.out'"
check "schema lines come before the data summary" \
    "[ \$(grep -n 'schema difference' '$W/schema.out' | tail -1 | cut -d: -f1) -lt \$(grep -n 'public.comp ' '$W/schema.out' | head -1 | cut -d: -f1) ]"

# 6. bad input -> exit 2, clear message
"$BIN" --old "$OLD" --new "host=127.0.0.1 port=1 dbname=$DB" --tables big >"$W/unr.out" 2>"$W/unr.err"; rc=$?
cat "$W/unr.err"
check "unreachable backend exits 2" "[ $rc -eq 2 ] && grep -q 'new database' '$W/unr.err' && ! grep -q identical '$W/unr.out'"
"$BIN" --old "$OLD" --new "$NEW" --tables nosuch >"$W/nt.out" 2>"$W/nt.err"; rc=$?
check "table missing on both sides exits 2 naming it" "[ $rc -eq 2 ] && grep -q nosuch '$W/nt.err'"

# 7. -c pgdual.ini
printf '[backends]\nold = %s\nnew = %s\n' "$OLD" "$NEW" >"$W/pgdual.ini"
"$BIN" -c "$W/pgdual.ini" --tables comp,uu >"$W/ini.out" 2>&1; rc=$?
check "-c pgdual.ini works" "[ $rc -eq 0 ]"

# 8. --watch prints changes only and keeps running
"$BIN" -c "$W/pgdual.ini" --tables comp --watch 1 >"$W/watch.out" 2>&1 & WP=$!
sleep 2
q "$NEW_PORT" "DELETE FROM comp WHERE region = 'region-3' AND day = '2000-01-01'"
# A pass takes a few seconds on a loaded machine: wait for the report (up to 30 s), then give
# --watch 3 s more, in which it must not report the same difference again.
for _ in $(seq 300); do
    grep -q 'new: public.comp: row' "$W/watch.out" && break
    sleep 0.1
done
sleep 3
kill "$WP" 2>/dev/null; wait "$WP" 2>/dev/null
cat "$W/watch.out"
check "--watch reports the new difference once" "[ \$(grep -c 'new: public.comp: row extra on new\\|new: public.comp: row missing on new' '$W/watch.out') -eq 1 ]"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
