#!/usr/bin/env bash
# tests/integration/it_pin_shadow.sh: a pinned statement of the extended protocol writes, on new,
# the table the client's prepared statement writes on old, even when its name finds another
# table by the time pgdual prepares its own statement on new (at the first Execute). PostgreSQL
# keeps a prepared statement's tables until something invalidates it; a table made since in an
# earlier schema of search_path does not.
# (A) a temporary table made after the Parse shadows public.u in this session;
# (B) another session makes c.u between this session's Parse and its first Execute
#     (search_path = c, public);
# (C) PostgreSQL itself resolves again (the session's temporary schema is made after the Parse,
#     which changes the effective search_path): old writes the temporary table, not the table
#     pgdual looked up; the write is counted, never pinned into the wrong table.
# Found by probing what review 12d found for WITH queries on ordinary pinned statements: before
# the fix (A) and (B) put new's rows into the shadowing table, in_sync, nothing counted.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_shadow
RAWPG="$IT_HARNESS_DIR/rawpg.py"
it_createdb "$DB"
it_proxy_start
raw() { timeout 60 python3 "$RAWPG" "$PROXY_PORT" "$DB" "$1"; }
rows() { "$1" "$DB" -tA -c "SELECT coalesce(string_agg(id || ':' || n, ',' ORDER BY id), '') FROM $2"; }

psql_proxy "$DB" -q -c "CREATE TABLE u (id serial PRIMARY KEY, n int)" -c "CREATE SCHEMA c"

# --- A: a temporary table made after the Parse ----------------------------------------------------
it_status_mark
out=$(raw "Q CREATE TEMP TABLE tmp0 (i int) ;; SEND ;; WAIT Z ;; PN s INSERT INTO u (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; Q CREATE TEMP TABLE u (id int, n int) ;; SEND ;; WAIT Z ;; BN s 300 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 301 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT count(*) FROM pg_temp.u ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "A: both Executes inserted a row"
assert_contains "$out" "C SELECT 1" "A: the temporary table was there"
assert_eq "1:300,2:301" "$(rows psql_old u)" "A: old wrote public.u (the prepared statement's table)"
assert_eq "$(rows psql_old u)" "$(rows psql_new u)" "A: new wrote public.u with old's ids"
assert_eq 2 "$(it_status_delta pinned_writes_total)" "A: both pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "A: nothing counted"

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
assert_eq "$(rows psql_old u)" "$(rows psql_new u)" "B: new wrote public.u with old's id"
assert_eq "" "$(rows psql_new c.u)" "B: new's c.u is empty"
assert_eq 1 "$(it_status_delta pinned_writes_total)" "B: pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "B: nothing counted"

# --- C: PostgreSQL resolves again: the write is counted ---------------------------------------------
it_status_mark
out=$(raw "PN s INSERT INTO u (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; Q CREATE TEMP TABLE u (id serial, n int) ;; SEND ;; WAIT Z ;; BN s 500 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT n FROM pg_temp.u ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_contains "$out" "C INSERT 0 1" "C: the Execute inserted a row"
assert_contains "$out" "C SELECT 1" "C: into the temporary table (as old alone does)"
assert_eq "$(rows psql_old u)" "$(rows psql_new u)" "C: public.u still the same on both"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "C: counted"
assert_eq 0 "$(it_status_delta pinned_writes_total)" "C: not pinned"
assert_contains "$(cat "$PROXY_LOG")" "the primary wrote another table than pgdual looked up" "C: the log says why"
assert_eq diverged "$(it_status secondary_state)" "C: new is out of sync until reconciled"

it_proxy_stop
