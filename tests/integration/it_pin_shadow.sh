#!/usr/bin/env bash
# tests/integration/it_pin_shadow.sh: a pinned statement of the extended protocol never writes, on
# new, another table than the client's prepared statement writes on old. pgdual prepares its
# statement on new at the first pinned Execute, naming the table as the client wrote it, while
# PostgreSQL keeps a prepared statement's table until something makes it resolve the name again
# (a change of search_path does; a table made since in an earlier schema does not). The primary
# checks, row by row, that the client's name still finds the table it wrote.
# (A) a temporary table made after the Parse shadows public.u in this session: counted;
# (B) another session makes c.u between this session's Parse and its first Execute
#     (search_path = c, public): counted;
# (C) PostgreSQL itself resolves again (the session's temporary schema is made after the Parse,
#     which changes the effective search_path): old writes the temporary table, and so does new:
#     pinned;
# (D) one schema per tenant: the same prepared statement after SET search_path writes the other
#     tenant's table on both, pinned, with old's ids;
# (E) SET ROLE to a role without USAGE on the statement's schema: the statement still runs for
#     the client as it does on old alone (a check through to_regclass failed it with 42501).
# (F) B for a data-modifying WITH query through the extended protocol: pgdual's statement is
#     prepared on old behind the client's Parse, the secondary's parsed on new at each Execute:
#     counted (the primary's statement marks a target name that finds another table now);
# (G) D for a data-modifying WITH query: pinned, with old's ids.
# (H) another session adds a column with a default that makes up values while a prepared INSERT
#     is cached: old's row holds old's value of it; the secondary's statement, made from the
#     columns pgdual read before, would let new make up its own: counted (the row's JSON keys are
#     not the columns pgdual read).
# (I) H for a data-modifying WITH query through the extended protocol: counted (the rows read
#     back have other keys than the columns pgdual read).
# (J) F for the parts of a WITH statement pgdual does not pin, which new's statement names again
#     at each Execute: a WITH DELETE by key beside a pinned INSERT, an outer UPDATE, an outer
#     INSERT reading a table; another session shadows the relation it names: counted, and new's
#     shadowing table is not touched (before the marks covered every relation: pinned, in_sync,
#     new's shadowing table written); and a WITH query named after its own table, and a
#     statement whose outer write alone is pinned (review 12g: the first was pinned, new writing
#     the shadowing table; the second counted at every Execute, DDL or not).
# Before the check, (A) and (B) put new's rows into the shadowing table, in_sync, nothing counted;
# before the mark, (F) did, pinned; before the column check, (H) left the new column different
# on old and new, pinned, in_sync, and so did (I) before the read-back's column check.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_shadow
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
raw() { it_rawpg "$DB" "$1"; }
rows() { "$1" "$DB" -tA -c "SELECT coalesce(string_agg(id || ':' || n, ',' ORDER BY id), '') FROM $2"; }

psql_proxy "$DB" -q -c "CREATE TABLE u (id serial PRIMARY KEY, n int)" -c "CREATE SCHEMA c"

# --- A: a temporary table made after the Parse ----------------------------------------------------
it_status_mark
out=$(raw "Q CREATE TEMP TABLE tmp0 (i int) ;; SEND ;; WAIT Z ;; PN s INSERT INTO u (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; Q CREATE TEMP TABLE u (id int, n int) ;; SEND ;; WAIT Z ;; BN s 300 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 301 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT count(*) FROM pg_temp.u ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "A: both Executes inserted a row"
assert_contains "$out" "C SELECT 1" "A: the temporary table was there"
assert_eq "1:300,2:301" "$(rows psql_old u)" "A: old wrote public.u (the prepared statement's table)"
assert_eq "$(rows psql_old u)" "$(rows psql_new u)" "A: new wrote public.u too"
assert_eq 0 "$(it_status_delta pinned_writes_total)" "A: not pinned"
assert_eq 2 "$(it_status_delta nondeterministic_writes_total)" "A: both counted"
assert_contains "$(cat "$PROXY_LOG")" "the primary wrote another table than its name finds now" "A: the log says why"

# --- B: another session makes c.u between the Parse and the first Execute -------------------------
it_status_mark
GO="$IT_TMP/go_b"
raw "Q SET search_path = c, public ;; SEND ;; WAIT Z ;; PN s INSERT INTO u (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; PAUSE $GO ;; BN s 400 ;; E ;; S ;; SEND ;; WAIT Z" >"$IT_TMP/b.out" 2>&1 &
B_PID=$!
paused() { grep -q '^PAUSE' "$IT_TMP/b.out"; }
it_wait_for 30 paused || it_fail "B: the first session did not prepare its statement"
psql_proxy "$DB" -q -c "CREATE TABLE c.u (id serial PRIMARY KEY, n int)"
touch "$GO"
wait "$B_PID" || it_failed "B: rawpg: $(cat "$IT_TMP/b.out")"
assert_contains "$(cat "$IT_TMP/b.out")" "C INSERT 0 1" "B: the Execute inserted a row"
assert_eq "1:300,2:301,3:400" "$(rows psql_old u)" "B: old wrote public.u"
assert_eq "" "$(rows psql_old c.u)" "B: old's c.u is empty"
assert_eq "1:300,2:301,3:400" "$(rows psql_new u)" "B: new wrote public.u"
assert_eq "" "$(rows psql_new c.u)" "B: new's c.u is empty"
assert_eq 0 "$(it_status_delta pinned_writes_total)" "B: not pinned"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "B: counted"
assert_eq diverged "$(it_status secondary_state)" "B: new is out of sync until reconciled"

# --- C: PostgreSQL resolves again on both sides: pinned into the temporary table ------------------
it_status_mark
out=$(raw "PN s INSERT INTO u (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; Q CREATE TEMP TABLE u (id serial, n int) ;; SEND ;; WAIT Z ;; BN s 500 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT n FROM pg_temp.u ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_contains "$out" "C INSERT 0 1" "C: the Execute inserted a row"
assert_contains "$out" "C SELECT 1" "C: into the temporary table (as old alone does)"
assert_eq "$(rows psql_old u)" "$(rows psql_new u)" "C: public.u still the same on both"
assert_eq 1 "$(it_status_delta pinned_writes_total)" "C: pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "C: nothing counted"

# --- D: one schema per tenant, one prepared statement -------------------------------------------
psql_proxy "$DB" -q -c "CREATE SCHEMA ta" -c "CREATE SCHEMA tb" \
    -c "CREATE TABLE ta.orders (id serial PRIMARY KEY, n int)" \
    -c "CREATE TABLE tb.orders (id serial PRIMARY KEY, n int)" \
    -c "SELECT setval('tb.orders_id_seq', 100)"
it_status_mark
out=$(raw "Q SET search_path = ta ;; SEND ;; WAIT Z ;; PN s INSERT INTO orders (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SET search_path = tb ;; SEND ;; WAIT Z ;; BN s 2 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 3 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 3 "$(grep -c '^C INSERT 0 1' <<<"$out")" "D: three INSERTs"
assert_eq "1:1" "$(rows psql_old ta.orders)" "D: old: the first in ta"
assert_eq "101:2,102:3" "$(rows psql_old tb.orders)" "D: old: the others in tb (PostgreSQL resolved the statement again)"
assert_eq "$(rows psql_old ta.orders)|$(rows psql_old tb.orders)" "$(rows psql_new ta.orders)|$(rows psql_new tb.orders)" "D: new holds the same rows, old's ids"
assert_eq 3 "$(it_status_delta pinned_writes_total)" "D: all three pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "D: nothing counted"

# --- F: WITH through the extended protocol, another session makes cw.w before an Execute --------
psql_proxy "$DB" -q -c "CREATE SCHEMA cw" -c "CREATE TABLE w (id serial PRIMARY KEY, n int)"
it_status_mark
GO="$IT_TMP/go_f"
WITHW='WITH x AS (INSERT INTO w (n) VALUES ($1) RETURNING id, n) SELECT id, n FROM x'
raw "Q SET search_path = cw, public ;; SEND ;; WAIT Z ;; PN s $WITHW ;; S ;; SEND ;; WAIT Z ;; BN s 600 ;; E ;; S ;; SEND ;; WAIT Z ;; PAUSE $GO ;; BN s 601 ;; E ;; S ;; SEND ;; WAIT Z" >"$IT_TMP/f.out" 2>&1 &
F_PID=$!
paused_f() { grep -q '^PAUSE' "$IT_TMP/f.out"; }
it_wait_for 30 paused_f || it_fail "F: the first session did not run its first Execute"
psql_proxy "$DB" -q -c "CREATE TABLE cw.w (id serial PRIMARY KEY, n int)"
touch "$GO"
wait "$F_PID" || it_failed "F: rawpg: $(cat "$IT_TMP/f.out")"
assert_eq 2 "$(grep -c '^C SELECT 1' "$IT_TMP/f.out")" "F: both Executes returned their row"
assert_eq "1:600,2:601" "$(rows psql_old w)" "F: old wrote public.w (the prepared statement's table)"
assert_eq "" "$(rows psql_old cw.w)" "F: old's cw.w is empty"
assert_eq "" "$(rows psql_new cw.w)" "F: new's cw.w is empty too (the statement went as the client's)"
assert_eq 1 "$(it_status_delta pinned_writes_total)" "F: the first Execute pinned, the second not"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "F: counted"
assert_contains "$(cat "$PROXY_LOG")" "names finds another one now than when it was prepared" "F: the log says why"

# --- G: one schema per tenant, one prepared WITH statement -----------------------------------------
it_status_mark
WITHO='WITH x AS (INSERT INTO orders (n) VALUES ($1) RETURNING id) SELECT id FROM x'
out=$(raw "Q SET search_path = ta ;; SEND ;; WAIT Z ;; PN s $WITHO ;; S ;; SEND ;; WAIT Z ;; BN s 11 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SET search_path = tb ;; SEND ;; WAIT Z ;; BN s 12 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C SELECT 1' <<<"$out")" "G: two rows returned"
assert_eq "1:1,2:11" "$(rows psql_old ta.orders)" "G: old: the first in ta"
assert_eq "101:2,102:3,103:12" "$(rows psql_old tb.orders)" "G: old: the second in tb"
assert_eq "$(rows psql_old ta.orders)|$(rows psql_old tb.orders)" "$(rows psql_new ta.orders)|$(rows psql_new tb.orders)" "G: new holds the same rows, old's ids"
assert_eq 2 "$(it_status_delta pinned_writes_total)" "G: both pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "G: nothing counted"

# --- E: a role without USAGE on the statement's schema ---------------------------------------------
psql_proxy "$DB" -q -c "DROP ROLE IF EXISTS it_pin_shadow_r1" -c "DROP ROLE IF EXISTS it_pin_shadow_r2" \
    -c "CREATE ROLE it_pin_shadow_r1" -c "CREATE ROLE it_pin_shadow_r2" -c "CREATE SCHEMA s" \
    -c "CREATE TABLE s.t (id serial PRIMARY KEY, n int)" \
    -c "GRANT USAGE ON SCHEMA s TO it_pin_shadow_r1" \
    -c "GRANT ALL ON s.t, s.t_id_seq TO it_pin_shadow_r1, it_pin_shadow_r2"
it_status_mark
out=$(raw "Q SET ROLE it_pin_shadow_r1 ;; SEND ;; WAIT Z ;; PN s INSERT INTO s.t (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SET ROLE it_pin_shadow_r2 ;; SEND ;; WAIT Z ;; BN s 2 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "E: both INSERTs ran for the client (as on old alone)"
assert_not_contains "$out" "42501" "E: no permission error"
# On new, pgdual prepares its statement again after SET ROLE, which the role's missing USAGE
# refuses: not silent (an error mismatch), a limit of its own (README, known gaps).
if [[ "$(rows psql_old s.t)" == "$(rows psql_new s.t)" ]]; then
    it_pass "E: s.t identical"
else
    assert_eq 1 "$(it_status_delta divergences_error_mismatch)" "E: new's refusal reported as an error mismatch"
fi

# --- H: another session's ALTER TABLE while a prepared INSERT is cached ---------------------------
psql_proxy "$DB" -q -c "CREATE TABLE h (id serial PRIMARY KEY, n int)"
it_status_mark
GO="$IT_TMP/go_h"
raw "PN s INSERT INTO h (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; PAUSE $GO ;; BN s 2 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 3 ;; E ;; S ;; SEND ;; WAIT Z" >"$IT_TMP/h.out" 2>&1 &
H_PID=$!
paused_h() { grep -q '^PAUSE' "$IT_TMP/h.out"; }
it_wait_for 30 paused_h || it_fail "H: the first session did not run its first Execute"
psql_proxy "$DB" -q -c "ALTER TABLE h ADD COLUMN ts timestamptz" \
    -c "ALTER TABLE h ALTER COLUMN ts SET DEFAULT clock_timestamp()"
touch "$GO"
wait "$H_PID" || it_failed "H: rawpg: $(cat "$IT_TMP/h.out")"
assert_eq 3 "$(grep -c '^C INSERT 0 1' "$IT_TMP/h.out")" "H: three INSERTs"
assert_eq 1 "$(it_status_delta pinned_writes_total)" "H: the first (before the ALTER) pinned"
assert_eq 2 "$(it_status_delta nondeterministic_writes_total)" "H: the two after it counted"
assert_contains "$(cat "$PROXY_LOG")" "its table's columns changed since pgdual read them" "H: the log says why"
hrows() { "$1" "$DB" -tA -c "SELECT string_agg(id || ':' || n || ':' || (ts IS NULL), ',' ORDER BY id) FROM h"; }
assert_eq "1:1:true,2:2:false,3:3:false" "$(hrows psql_old)" "H: old: ids 1-3, the later two with old's clock value"

# --- I: H for a prepared WITH statement ------------------------------------------------------------
psql_proxy "$DB" -q -c "CREATE TABLE hw (id serial PRIMARY KEY, n int)"
it_status_mark
GO="$IT_TMP/go_i"
WITHH='WITH x AS (INSERT INTO hw (n) VALUES ($1) RETURNING id) SELECT id FROM x'
raw "PN s $WITHH ;; S ;; SEND ;; WAIT Z ;; BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; PAUSE $GO ;; BN s 2 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 3 ;; E ;; S ;; SEND ;; WAIT Z" >"$IT_TMP/i.out" 2>&1 &
I_PID=$!
paused_i() { grep -q '^PAUSE' "$IT_TMP/i.out"; }
it_wait_for 30 paused_i || it_fail "I: the first session did not run its first Execute"
psql_proxy "$DB" -q -c "ALTER TABLE hw ADD COLUMN ts timestamptz" \
    -c "ALTER TABLE hw ALTER COLUMN ts SET DEFAULT clock_timestamp()"
touch "$GO"
wait "$I_PID" || it_failed "I: rawpg: $(cat "$IT_TMP/i.out")"
assert_eq 3 "$(grep -c '^C SELECT 1' "$IT_TMP/i.out")" "I: three rows returned"
assert_eq 1 "$(it_status_delta pinned_writes_total)" "I: the first (before the ALTER) pinned"
assert_eq 2 "$(it_status_delta nondeterministic_writes_total)" "I: the two after it counted"
assert_contains "$(cat "$PROXY_LOG")" "a WITH query's table's columns changed since pgdual read them" "I: the log says why"

# --- J: the parts of a WITH statement pgdual does not pin ----------------------------------------
psql_proxy "$DB" -q -c "CREATE SCHEMA cj" -c "CREATE TABLE ju (id serial PRIMARY KEY, n int)" \
    -c "CREATE TABLE jq (id int PRIMARY KEY, n int)" -c "INSERT INTO jq SELECT g, g FROM generate_series(1, 5) g" \
    -c "CREATE TABLE jcnt (k int PRIMARY KEY, v int)" -c "INSERT INTO jcnt VALUES (1, 0)" \
    -c "CREATE TABLE jsrc (k int PRIMARY KEY, x int)" -c "INSERT INTO jsrc VALUES (1, 10)" \
    -c "CREATE TABLE jlg (uid int PRIMARY KEY, x int)" -c "CREATE TABLE jn (id serial PRIMARY KEY, n int)" \
    -c "CREATE TABLE jq2 (id int PRIMARY KEY, n int)" -c "INSERT INTO jq2 SELECT g, g FROM generate_series(1, 5) g" \
    -c "CREATE TABLE jarch (id int, n int, at timestamptz)"
# shadow_case NAME PARSE STATEMENT SHADOW_SQL CHECK_SQL WANT: PARSE (PN, or PT with types) under
# search_path cj, public, an Execute, another session's SHADOW_SQL, two Executes; CHECK_SQL gives
# WANT on old and on new.
shadow_case() {
    local name=$1 parse=$2 stmt=$3 shadow=$4 check=$5 want=$6 go="$IT_TMP/go_j_$1"
    it_status_mark
    raw "Q SET search_path = cj, public ;; SEND ;; WAIT Z ;; $parse s $stmt ;; S ;; SEND ;; WAIT Z ;; BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; PAUSE $go ;; BN s 2 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 3 ;; E ;; S ;; SEND ;; WAIT Z" >"$IT_TMP/j_$name.out" 2>&1 &
    local pid=$!
    paused_j() { grep -q '^PAUSE' "$IT_TMP/j_$1.out"; }
    it_wait_for 30 paused_j "$name" || it_fail "J $name: the first session did not run its first Execute"
    psql_proxy "$DB" -q -c "$shadow"
    touch "$go"
    wait "$pid" || it_failed "J $name: rawpg: $(cat "$IT_TMP/j_$name.out")"
    assert_eq 0 "$(grep -c '^E ' "$IT_TMP/j_$name.out" || true)" "J $name: no error"
    assert_eq 1 "$(it_status_delta pinned_writes_total)" "J $name: the Execute before the shadow pinned"
    assert_eq 2 "$(it_status_delta nondeterministic_writes_total)" "J $name: the two after it counted"
    assert_eq "$want" "$(psql_old "$DB" -tA -c "$check")" "J $name: old: $check"
    assert_eq "$want" "$(psql_new "$DB" -tA -c "$check")" "J $name: new: $check (the shadowing table not used)"
}
shadow_case delete "PT" "23 WITH dq AS (DELETE FROM jq WHERE id = \$1), w AS (INSERT INTO ju (n) VALUES (\$1) RETURNING id) SELECT id FROM w" \
    "CREATE TABLE cj.jq (id int PRIMARY KEY, n int); INSERT INTO cj.jq SELECT g, g FROM generate_series(1, 5) g" \
    "SELECT count(*) FROM cj.jq" 5
shadow_case update "PN" "WITH w AS (INSERT INTO ju (n) VALUES (\$1) RETURNING id) UPDATE jcnt SET v = v + 1 WHERE k = 1" \
    "CREATE TABLE cj.jcnt (k int PRIMARY KEY, v int); INSERT INTO cj.jcnt VALUES (1, 0)" \
    "SELECT v FROM cj.jcnt" 0
shadow_case read "PN" "WITH w AS (INSERT INTO ju (n) VALUES (\$1) RETURNING id) INSERT INTO jlg (uid, x) SELECT w.id, s.x FROM w, jsrc s" \
    "CREATE TABLE cj.jsrc (k int PRIMARY KEY, x int); INSERT INTO cj.jsrc VALUES (1, 99)" \
    "SELECT string_agg(x::text, ',') FROM jlg" "10,10,10"
# a WITH query named after its own table (review 12g): the target is the table, shadowed
shadow_case samename "PN" "WITH jn AS (INSERT INTO jn (n) VALUES (\$1) RETURNING id) SELECT id FROM jn" \
    "CREATE TABLE cj.jn (id serial PRIMARY KEY, n int)" "SELECT count(*) FROM cj.jn" 0
# only the outer statement pinned (moving rows with a timestamp; review 12g): the mark comes alone
shadow_case archive "PT" "23 WITH d AS (DELETE FROM jq2 WHERE id = \$1 RETURNING *) INSERT INTO jarch SELECT id, n, clock_timestamp() FROM d" \
    "CREATE TABLE cj.jq2 (id int PRIMARY KEY, n int); INSERT INTO cj.jq2 SELECT g, g FROM generate_series(1, 5) g" \
    "SELECT count(*) FROM cj.jq2" 5
assert_contains "$(cat "$PROXY_LOG")" "names finds another one now than when it was prepared" "J: the log says why"

it_proxy_stop
