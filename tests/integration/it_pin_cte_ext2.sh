#!/usr/bin/env bash
# tests/integration/it_pin_cte_ext2.sh: review findings on data-modifying WITH queries pinned
# through the extended protocol (issue 12), each driven message by message (rawpg.py):
#  1. pgdual's temporary table gone (DISCARD TEMP, a rolled-back block it was made in) while the
#     session holds a rewritten prepared statement, then a batch whose Bind comes after something
#     already reached the primary: the client gets old's answers, never a hang or an error of
#     pgdual's;
#  2. a parameter whose type the pinned WITH write inferred, used again outside it;
#  3. rows left in pgdual's table on the secondary by a verbatim run before a primary switch and
#     back;
#  4. a failed batch with a savepoint rolled back: the verbatim WITH write is counted.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_cte_ext2
RAWPG="$IT_HARNESS_DIR/rawpg.py"
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
same() {
    local sql="SELECT md5(coalesce(string_agg(w_::text, ',' ORDER BY w_::text), '')) FROM $1 w_"
    assert_eq "$(psql_old "$DB" -tA -c "$sql")" "$(psql_new "$DB" -tA -c "$sql")" "$2"
}
# raw SCRIPT: rawpg.py through pgdual.
raw() { timeout 60 python3 "$RAWPG" "$PROXY_PORT" "$DB" "$1"; }
psql_proxy "$DB" -q -c "
CREATE TABLE t (id serial PRIMARY KEY, n int, at timestamptz);
CREATE TABLE log (id serial PRIMARY KEY, m text);
INSERT INTO t (n, at) SELECT g, '2020-01-01' FROM generate_series(1, 10) g;"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the WITH writes"

INS='WITH w AS (INSERT INTO t (n) VALUES ($1) RETURNING id) SELECT id FROM w'

# ---- 1. pgdual's table gone, the Bind mid-batch ----------------------------------------------
it_status_mark
out=$(raw "PN s $INS ;; S ;; SEND ;; WAIT Z ;; Q DISCARD TEMP ;; SEND ;; WAIT Z ;; \
P SELECT 1 ;; B ;; E ;; H ;; SEND ;; WAIT C ;; BN s 101 ;; E ;; S ;; SEND ;; WAIT Z ;; \
BN s 102 ;; E ;; S ;; SEND ;; WAIT Z") || it_failed "finding 1 (DISCARD TEMP): $out"
echo "$out" >&2
assert_eq "Z I" "$(tail -n1 <<<"$out")" "DISCARD TEMP, then a Bind mid-batch: the client gets its ReadyForQuery"
assert_not_contains "$out" "E " "...and no error old alone would not give"
assert_eq "2" "$(grep -c '^C SELECT 1' <<<"$out")" "both Executes answered (SELECT 1 each)"
assert_delta nondeterministic_writes_total -eq 0 "nothing counted"
assert_eq "in_sync" "$(it_status secondary_state)" "new stays in_sync"
same t "t identical on old and new"

it_proxy_stop
