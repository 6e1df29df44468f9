#!/usr/bin/env bash
# tests/integration/it_reads_ramp.sh: pgbench select-only (-M prepared, 16 clients) through
# pgdual while read_new_percent walks 0 -> 100 -> 0 one step a second: no client error, both
# backends served reads, and the two sides never diverged (compare 100 on identical data).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "the read dial exists only in pgdual (PGDUAL_TEST_DIRECT=1)"
it_mirrors || it_skip "the read dial needs both backends (PGDUAL_MIRRORS=0)"

DB=it_reads_ramp
it_createdb "$DB"
it_proxy_start cutover.read_new_percent=0 cutover.compare_percent=100

if pgbench -i -s 2 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres "$DB" >"$IT_TMP/init.out" 2>&1; then
    it_pass "pgbench -i -s 2 through pgdual"
else
    it_fail "pgbench -i failed: $(tail -n 20 "$IT_TMP/init.out")"
fi
sums="SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts"
assert_eq "$(psql_old "$DB" -tA -c "$sums")" "$(psql_new "$DB" -tA -c "$sums")" "pgbench tables equal on both sides"

it_status_mark
pgbench -n -S -M prepared -c 16 -j 2 -T 20 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres "$DB" \
    >"$IT_TMP/run.out" 2>&1 &
load=$!
sleep 2
for pct in 0 10 25 50 75 100 75 50 25 10 0; do
    psql_admin "SET read_new_percent = $pct" >/dev/null || it_failed "SET read_new_percent = $pct"
    sleep 1
done
rc=0
wait "$load" || rc=$?
out=$(cat "$IT_TMP/run.out")
assert_eq 0 "$rc" "pgbench -S exit status"
if grep -qiE 'error|aborted' <<<"$out"; then
    it_failed "pgbench reported errors: $(grep -iE 'error|aborted' <<<"$out" | head -n 5)"
else
    it_pass "no error or aborted client in pgbench's output"
fi
assert_match "$out" "number of failed transactions: 0 " "pgbench: no failed transaction"
assert_delta reads_served_new -gt 0 "new served some of the reads"
assert_delta reads_served_old -gt 0 "old served some of the reads"
assert_delta shadow_compares_total -gt 0 "reads were shadowed and compared" 10
assert_delta divergences_total -eq 0 "no divergence on identical data"
it_proxy_stop
