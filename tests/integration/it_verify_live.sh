#!/usr/bin/env bash
# tests/integration/it_verify_live.sh: pgdual-verify --live --repair --apply directly against the
# two clusters (no pgdual): planted missing / extra / different rows on new are repaired, the
# repair log names exactly the planted keys; an empty table is backfilled by COPY and --resume
# skips finished ranges. Prints "N passed, N failed" last.
set -u
CL=${PGDUAL_TEST_CLUSTER:?PGDUAL_TEST_CLUSTER unset}
BIN=${PGDUAL_VERIFY_BIN:?PGDUAL_VERIFY_BIN unset}
# shellcheck disable=SC1091
. "$CL/cluster.env"
export PGHOST PGUSER
DB=vlive_$$_$(date +%s)
W=$(mktemp -d /tmp/it_verify_live.XXXXXX)
PASS=0 FAIL=0
ok()    { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad()   { FAIL=$((FAIL + 1)); echo "FAIL - $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
q()     { psql -X -q -v ON_ERROR_STOP=1 -p "$1" -d "$DB" -Atc "$2"; }
ci()    { echo "host=127.0.0.1 port=$1 user=$PGUSER dbname=$DB"; }
cleanup() {
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
CREATE TABLE big (id int PRIMARY KEY, a int, b text, g int GENERATED ALWAYS AS (a * 2) STORED);
INSERT INTO big (id, a, b) SELECT g, g, 'row ' || g FROM generate_series(1, 60000) g;
CREATE TABLE comp (region text, day date, qty int, PRIMARY KEY (region, day));
INSERT INTO comp SELECT 'region-' || (g % 50), date '2000-01-01' + g / 50, g FROM generate_series(0, 19999) g;
CREATE TABLE uu (id uuid PRIMARY KEY, v numeric, tags text[]);
INSERT INTO uu SELECT md5('u' || g)::uuid, g / 3.0, ARRAY['t' || g, 'it''s'] FROM generate_series(1, 5000) g;
CREATE TABLE nokey (a int, b text);
INSERT INTO nokey SELECT g % 100, 'k' || g FROM generate_series(1, 3000) g;
CREATE TABLE dup (a int, b text);
INSERT INTO dup SELECT g % 4, 'same' FROM generate_series(1, 4000) g;
CREATE TABLE fill (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, t text);
ANALYZE;
SQL
)
q "$OLD_PORT" "$SETUP" && q "$NEW_PORT" "$SETUP" || { bad setup; echo "$PASS passed, $FAIL failed"; exit 1; }
q "$OLD_PORT" "INSERT INTO fill (t) SELECT 'f' || g FROM generate_series(1, 300000) g; ANALYZE fill"
OLD=$(ci "$OLD_PORT") NEW=$(ci "$NEW_PORT")
U7=$(q "$OLD_PORT" "SELECT md5('u7')::uuid")

# 1. planted differences on new, repaired by --live
q "$NEW_PORT" "DELETE FROM big WHERE id IN (10, 45000);
  INSERT INTO big (id, a, b) VALUES (70000, 1, 'extra');
  UPDATE big SET b = 'changed' WHERE id = 30000;
  UPDATE comp SET qty = -1 WHERE region = 'region-7' AND day = '2000-01-08';
  DELETE FROM comp WHERE region = 'region-9' AND day = '2000-02-01';
  INSERT INTO comp VALUES ('zzz', '2001-01-01', 1);
  UPDATE uu SET tags = ARRAY['x'] WHERE id = md5('u7')::uuid;
  DELETE FROM uu WHERE id = md5('u8')::uuid;
  UPDATE nokey SET b = 'changed' WHERE b = 'k77';
  INSERT INTO nokey VALUES (1, 'extra');
  INSERT INTO dup SELECT 0, 'same' FROM generate_series(1, 3);
  INSERT INTO dup SELECT 2, 'same' FROM generate_series(1, 2);
  DELETE FROM dup WHERE ctid IN (SELECT ctid FROM dup WHERE a = 3 LIMIT 4)"
U8=$(q "$OLD_PORT" "SELECT md5('u8')::uuid")
before=$(q "$OLD_PORT" "SELECT sum(hashtextextended(t::text, 0)) FROM big t")
"$BIN" --old "$OLD" --new "$NEW" --tables big,comp,uu,nokey,dup --live --repair --apply \
    --repair-log "$W/log.jsonl" --json "$W/sum.json" >"$W/live.out" 2>"$W/live.err"; rc=$?
cat "$W/live.out" "$W/live.err"
check "--live exits 0" "[ $rc -eq 0 ]"
"$BIN" --old "$OLD" --new "$NEW" --tables big,comp,uu,nokey,dup >"$W/after.out" 2>&1; rc=$?
check "plain verify after --live finds 0 differences" "[ $rc -eq 0 ]"
check "old untouched" "[ '$before' = \"\$(q $OLD_PORT 'SELECT sum(hashtextextended(t::text, 0)) FROM big t')\" ]"
python3 - "$W/log.jsonl" "$U7" "$U8" >"$W/log.check" 2>&1 <<'PY'
import json, sys
got = []
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["action"].startswith("multiset"):
        got.append((d["table"], d["action"], d["rows"]))
    else:
        got.append((d["table"], d["action"], tuple(sorted(d["key"].items())), tuple(d["columns"])))
want = [
    ("public.big", "insert", (("id", "10"),), ("id", "a", "b")),
    ("public.big", "insert", (("id", "45000"),), ("id", "a", "b")),
    ("public.big", "delete", (("id", "70000"),), ()),
    ("public.big", "update", (("id", "30000"),), ("b",)),
    ("public.comp", "update", (("day", "2000-01-08"), ("region", "region-7")), ("qty",)),
    ("public.comp", "insert", (("day", "2000-02-01"), ("region", "region-9")), ("region", "day", "qty")),
    ("public.comp", "delete", (("day", "2001-01-01"), ("region", "zzz")), ()),
    ("public.uu", "update", (("id", sys.argv[2]),), ("tags",)),
    ("public.uu", "insert", (("id", sys.argv[3]),), ("id", "v", "tags")),
    ("public.nokey", "multiset_insert", 1),
    ("public.nokey", "multiset_delete", 1),  # the updated row's old value
    ("public.nokey", "multiset_delete", 1),  # the inserted extra row
    ("public.dup", "multiset_delete", 3),  # 1,003 copies of (0, same) on new for 1,000 on old
    ("public.dup", "multiset_delete", 2),
    ("public.dup", "multiset_insert", 4),  # copies of (3, same) deleted on new
]
got.sort(key=repr)
want.sort(key=repr)
print("got:", got, "want:", want) if got != want else print("log matches")
sys.exit(0 if got == want else 1)
PY
check "repair log names exactly the planted keys" "[ $? -eq 0 ]"
cat "$W/log.check"
check "summary JSON: 21 rows repaired, identical" \
    "grep -q '\"result\":\"identical\"' '$W/sum.json' && grep -q '\"rows_repaired\":21,' '$W/sum.json'"
check "dup: every value's copies equal on old and new" \
    "[ \"\$(q $OLD_PORT 'SELECT a, count(*) FROM dup GROUP BY a ORDER BY a')\" = \"\$(q $NEW_PORT 'SELECT a, count(*) FROM dup GROUP BY a ORDER BY a')\" ]"

# 1b. the same duplicated rows repaired by the plain --repair --apply (no --live): one fetch of the
# missing copies and one DELETE of the surplus per table
q "$NEW_PORT" "INSERT INTO dup SELECT 1, 'same' FROM generate_series(1, 5);
  DELETE FROM dup WHERE ctid IN (SELECT ctid FROM dup WHERE a = 2 LIMIT 3)"
"$BIN" --old "$OLD" --new "$NEW" --tables dup --repair >"$W/dup.sql" 2>&1
check "plain --repair prints one DELETE for the table's surplus copies" \
    "[ \"\$(grep -c '^DELETE FROM \"public\".\"dup\"' '$W/dup.sql')\" = 1 ] && [ \"\$(grep -c '^INSERT INTO' '$W/dup.sql')\" = 3 ]"
"$BIN" --old "$OLD" --new "$NEW" --tables dup --repair --apply >"$W/dup.out" 2>&1; rc=$?
check "plain --repair --apply on duplicated rows exits 0" "[ $rc -eq 0 ]"
check "dup after the plain repair: every value's copies equal on old and new" \
    "[ \"\$(q $OLD_PORT 'SELECT a, count(*) FROM dup GROUP BY a ORDER BY a')\" = \"\$(q $NEW_PORT 'SELECT a, count(*) FROM dup GROUP BY a ORDER BY a')\" ]"

# 2. a second run repairs nothing
"$BIN" --old "$OLD" --new "$NEW" --tables big,comp,uu,nokey,dup --live --repair --apply \
    --repair-log "$W/log2.jsonl" >"$W/live2.out" 2>&1; rc=$?
check "second --live run: exit 0, nothing repaired" "[ $rc -eq 0 ] && [ ! -s '$W/log2.jsonl' ]"

# 3. backfill of an empty table by COPY ranges, resumable
"$BIN" --old "$OLD" --new "$NEW" --tables fill --live --repair --apply --resume "$W/resume" \
    --json "$W/bf.json" --repair-log "$W/bf.jsonl" >"$W/bf.out" 2>&1; rc=$?
cat "$W/bf.out" "$W/bf.json"
check "backfill exits 0" "[ $rc -eq 0 ]"
check "backfill copied 300000 rows in ranges" \
    "grep -q '\"rows_copied\":300000' '$W/bf.json' && [ \$(grep -c copy_range '$W/bf.jsonl') -ge 2 ]"
check "backfill: plain verify finds 0 differences" \
    "'$BIN' --old '$OLD' --new '$NEW' --tables fill >/dev/null 2>&1"
nplan=$(grep -c '^range ' "$W/resume") ndone=$(grep -c '^done ' "$W/resume")
check "resume file: every planned range done ($ndone/$nplan)" "[ $nplan -ge 2 ] && [ $ndone -eq $nplan ]"
# Resume: forget the last range on new and in the file; a second run copies only that one.
last=$(grep '^range ' "$W/resume" | tail -1)
lo=$(echo "$last" | awk '{print $4}')
idx=$(echo "$last" | awk '{print $3}')
lokey=$(echo "$lo" | xxd -r -p | tr -d '\0')
q "$NEW_PORT" "DELETE FROM fill WHERE id >= $lokey"
grep -v "^done public.fill $idx " "$W/resume" >"$W/resume2"
"$BIN" --old "$OLD" --new "$NEW" --tables fill --live --repair --apply --resume "$W/resume2" \
    --repair-log "$W/bf2.jsonl" >"$W/bf2.out" 2>&1; rc=$?
cat "$W/bf2.out"
check "resumed backfill: exit 0, one range copied" \
    "[ $rc -eq 0 ] && [ \$(grep -c copy_range '$W/bf2.jsonl') -eq 1 ] && grep -q 'resuming 1 of $nplan' '$W/bf2.out'"
check "resumed backfill: plain verify finds 0 differences" \
    "'$BIN' --old '$OLD' --new '$NEW' --tables fill >/dev/null 2>&1"

# 3b. scattered differences over several leaves of fill (300,000 rows, leaves of at most 65,536):
# the leaves are repaired on --jobs 2 connection pairs at once, and each locked transaction's
# upserts go to new as one multi-row statement (--stats says both); the log names exactly the
# planted rows.
q "$NEW_PORT" "UPDATE fill SET t = 'changed' WHERE id % 1000 = 0;
  DELETE FROM fill WHERE id % 25000 = 7;
  INSERT INTO fill (id, t) OVERRIDING SYSTEM VALUE SELECT 400000 + g, 'extra' FROM generate_series(1, 5) g"
"$BIN" --old "$OLD" --new "$NEW" --tables fill --live --repair --apply --jobs 2 --stats \
    --no-progress --repair-log "$W/par.jsonl" >"$W/par.out" 2>"$W/par.err"; rc=$?
cat "$W/par.err"
check "scattered differences, --jobs 2: exit 0" "[ $rc -eq 0 ]"
check "scattered differences: plain verify finds 0 differences" \
    "'$BIN' --old '$OLD' --new '$NEW' --tables fill >/dev/null 2>&1"
check "scattered differences: the log has 300 updates, 12 inserts, 5 deletes" \
    "[ \$(grep -c '\"action\":\"update\"' '$W/par.jsonl') -eq 300 ] &&
     [ \$(grep -c '\"action\":\"insert\"' '$W/par.jsonl') -eq 12 ] &&
     [ \$(grep -c '\"action\":\"delete\"' '$W/par.jsonl') -eq 5 ] &&
     [ \$(wc -l <'$W/par.jsonl') -eq 317 ]"
stats=$(grep -m1 '^stats: public.fill: .* leaves on ' "$W/par.err")
leaves=$(echo "$stats" | sed -n 's/.* \([0-9]*\) leaves on.*/\1/p')
ups=$(echo "$stats" | sed -n 's/.*; \([0-9]*\) upsert statements of \([0-9]*\) rows.*/\1 \2/p')
check "scattered differences: $leaves leaves on 2 connection pairs" \
    "[ \"\${leaves:-0}\" -ge 2 ] && echo '$stats' | grep -q 'on 2 connection pair(s)'"
check "scattered differences: 312 upserted rows in one statement per locked transaction ($ups)" \
    "[ \"\${ups#* }\" = 312 ] && [ \"\${ups% *}\" -le \"\$leaves\" ]"

# 3c. one row in twenty of fill differs: the probe (1,000 sampled rows looked up on new) finds
# that every range would differ and hands them all to the repair as leaves, skipping the
# checksums; 3b's 0.1 % kept them. Every changed row is repaired either way.
q "$NEW_PORT" "UPDATE fill SET t = 'again' WHERE id % 20 = 3"
"$BIN" --old "$OLD" --new "$NEW" --tables fill --live --repair --apply --stats --no-progress \
    --repair-log "$W/dense.jsonl" >"$W/dense.out" 2>"$W/dense.err"; rc=$?
cat "$W/dense.err"
check "dense differences: exit 0, 15000 rows updated" \
    "[ $rc -eq 0 ] && [ \$(grep -c '\"action\":\"update\"' '$W/dense.jsonl') -eq 15000 ] &&
     [ \$(wc -l <'$W/dense.jsonl') -eq 15000 ]"
check "dense differences: plain verify finds 0 differences" \
    "'$BIN' --old '$OLD' --new '$NEW' --tables fill >/dev/null 2>&1"
# The probe's sample is random (TABLESAMPLE, random()): at 0.1 % it draws 3 or more of the 317
# differing rows in about one run in eleven, and then rightly takes every range as a leaf. So
# at 0.1 % the check is that the choice follows what the sample drew (fewer than 3: checksums).
sparse=$(grep -m1 'stats: public.fill: probe:' "$W/par.err")
sparse_diffs=$(echo "$sparse" | sed -n 's/.*probe: \([0-9]*\) of .*/\1/p')
check "probe: every range a leaf at 5 %, checksums at 0.1 % when its sample drew fewer than 3 ($sparse)" \
    "grep -m1 'stats: public.fill: probe:' '$W/dense.err' | grep -q 'every range a leaf' &&
     { [ \"\${sparse_diffs:-9}\" -ge 3 ] || echo '$sparse' | grep -q 'checksums'; }"

# Different server defaults on the two sides: new's database reads dates as SQL, DMY and prints
# timestamptz in India's zone. A repaired row must still hold old's values (01/02 is 2 January
# under DMY: text that travelled under the servers' own DateStyles would land as another date).
q "$OLD_PORT" "CREATE TABLE days (id int PRIMARY KEY, d date, ts timestamptz, f float8)"
q "$NEW_PORT" "CREATE TABLE days (id int PRIMARY KEY, d date, ts timestamptz, f float8)"
q "$OLD_PORT" "ALTER DATABASE $DB SET DateStyle = 'SQL, MDY'"
q "$NEW_PORT" "ALTER DATABASE $DB SET DateStyle = 'SQL, DMY'"
q "$NEW_PORT" "ALTER DATABASE $DB SET TimeZone = 'Asia/Kolkata'"
q "$OLD_PORT" "INSERT INTO days VALUES (1, '2024-01-02', '2024-01-02 03:04:05+00', 0.1),
                                       (2, '2024-12-31', '2024-12-31 23:59:59+00', 1e-7)"
q "$NEW_PORT" "INSERT INTO days VALUES (1, '2024-01-05', '2024-01-02 03:04:05+00', 0.1)"
"$BIN" --old "$OLD" --new "$NEW" --tables days --live --repair --apply --no-progress >"$W/days.out" 2>&1
rc=$?
check "different DateStyle / TimeZone on the two sides: --live exits 0" "[ $rc -eq 0 ]"
days_old=$(psql -X -q -p "$OLD_PORT" -d "$DB" -Atc "SET DateStyle = ISO; SET TimeZone = UTC; SELECT id, d, ts, f FROM days ORDER BY id")
days_new=$(psql -X -q -p "$NEW_PORT" -d "$DB" -Atc "SET DateStyle = ISO; SET TimeZone = UTC; SELECT id, d, ts, f FROM days ORDER BY id")
if [ -n "$days_old" ] && [ "$days_old" = "$days_new" ]; then
    ok "different DateStyle / TimeZone: new holds old's dates, instants and floats exactly"
else
    bad "different DateStyle / TimeZone: new holds old's dates, instants and floats exactly (old: $days_old; new: $days_new)"
fi

# The same defaults with timestamp keys over ranges (300,000 rows: the key ranges the scan reads
# bound the locked reads): the ranges' bounds must travel as ISO text. Read under the servers'
# own DateStyles, 01/02 bounds read back as other dates and nothing was repaired.
for p in "$OLD_PORT" "$NEW_PORT"; do
    q "$p" "CREATE TABLE stamps (ts timestamp PRIMARY KEY, v int);
      INSERT INTO stamps SELECT '2026-01-01'::timestamp + g * interval '1 minute', g
      FROM generate_series(0, 299999) g"
done
q "$NEW_PORT" "UPDATE stamps SET v = -v WHERE v % 1000 = 1; DELETE FROM stamps WHERE v % 30000 = 2"
"$BIN" --old "$OLD" --new "$NEW" --tables stamps --live --repair --apply --no-progress \
    --repair-log "$W/stamps.jsonl" >"$W/stamps.out" 2>&1
rc=$?
check "timestamp keys under DMY / MDY: --live exits 0, 310 rows repaired" \
    "[ $rc -eq 0 ] && [ \$(wc -l <'$W/stamps.jsonl') -eq 310 ]"
check "timestamp keys under DMY / MDY: plain verify finds 0 differences" \
    "'$BIN' --old '$OLD' --new '$NEW' --tables stamps >/dev/null 2>&1"

# Keys equal under their type's equality but printed otherwise (numeric 5.0 on new for old's 5):
# the upsert of 5 conflicts with 5.0 and gives it old's text in place. Before, the "extra" 5.0 was
# deleted in pass 1 (the row gone from new until pass 2 inserted 5). A non-key GENERATED ALWAYS
# identity column, which no UPDATE can set, no longer fails the whole chunk's upsert: the other
# columns are repaired.
for p in "$OLD_PORT" "$NEW_PORT"; do
    q "$p" "CREATE TABLE nkeys (k numeric PRIMARY KEY, v int);
      INSERT INTO nkeys SELECT g, g FROM generate_series(1, 20) g;
      CREATE TABLE idcols (id int PRIMARY KEY, n int GENERATED ALWAYS AS IDENTITY, v text);
      INSERT INTO idcols (id, v) SELECT g, 'v' FROM generate_series(1, 20) g"
done
q "$NEW_PORT" "UPDATE nkeys SET k = 5.0 WHERE k = 5; UPDATE nkeys SET k = 7.00, v = 70 WHERE k = 7;
  UPDATE idcols SET v = 'changed' WHERE id IN (3, 4)"
"$BIN" --old "$OLD" --new "$NEW" --tables nkeys,idcols --live --repair --apply --no-progress \
    --repair-log "$W/nkeys.jsonl" >"$W/nkeys.out" 2>&1
rc=$?
deletes=$(grep -c '"action":"delete"' "$W/nkeys.jsonl")
nk_entries=$(grep -c '"table":"public.nkeys"' "$W/nkeys.jsonl")
pass2=$(grep -c '"pass":2' "$W/nkeys.jsonl")
check "numeric keys 5.0 / 7.00: --live exits 0, no row deleted, both repaired in pass 1" \
    "[ $rc -eq 0 ] && [ $deletes -eq 0 ] && [ $nk_entries -eq 2 ] && [ $pass2 -eq 0 ]"
nk_new=$(q "$NEW_PORT" "SELECT string_agg(k::text || ':' || v, ',' ORDER BY k) FROM nkeys WHERE k IN (5, 7)")
check "numeric keys: new holds old's key text ($nk_new)" "[ '$nk_new' = '5:5,7:7' ]"
check "numeric keys, identity table's other columns: plain verify finds 0 differences" \
    "'$BIN' --old '$OLD' --new '$NEW' --tables nkeys,idcols >/dev/null 2>&1"

# A key under a nondeterministic collation ('abc' on old, 'ABC' on new, equal to it): the upsert
# compares byte for byte, so it gives new old's text; the delete of the "extra" ABC then finds
# nothing. Before, the upsert saw no difference and the delete removed the row (review 17).
for p in "$OLD_PORT" "$NEW_PORT"; do
    q "$p" "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE TABLE names (name text COLLATE ci PRIMARY KEY, v int)"
done
q "$OLD_PORT" "INSERT INTO names VALUES ('abc', 1), ('x', 2)"
q "$NEW_PORT" "INSERT INTO names VALUES ('ABC', 1), ('x', 2)"
"$BIN" --old "$OLD" --new "$NEW" --tables names --live --repair --apply --max-passes 1 \
    --no-progress >"$W/names.out" 2>&1
names_new=$(q "$NEW_PORT" "SELECT string_agg(name, ',' ORDER BY name COLLATE \"C\") FROM names")
check "a nondeterministic collation key: new holds old's text after one pass ($names_new)" \
    "[ '$names_new' = 'abc,x' ]"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
