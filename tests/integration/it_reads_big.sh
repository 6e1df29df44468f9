#!/usr/bin/env bash
# tests/integration/it_reads_big.sh: a 1,000,000-row read served by new (dial 100) and shadowed
# on old (compare 100) streams through pgdual: its RSS grows by less than 16 MiB, the client gets
# every row (same checksum as old's, read directly), and the two sides compare equal.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "the read dial exists only in pgdual (PGDUAL_TEST_DIRECT=1)"
it_mirrors || it_skip "the read dial needs both backends (PGDUAL_MIRRORS=0)"

DB=it_reads_big
ROWS=1000000
MAX_GROWTH_KIB=$((16 * 1024))
it_createdb "$DB"
it_proxy_start cutover.read_new_percent=0 cutover.compare_percent=0

psql_proxy "$DB" -q -c "CREATE TABLE big (id int PRIMARY KEY, v text)" \
    -c "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, $ROWS) g"
assert_eq "$ROWS" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM big")" "big is mirrored to new"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$PROXY_PID/status"; }

it_dials read_new_percent=100 compare_percent=100
# Warm-up: the session machinery and the shadow path have run once before the baseline.
assert_eq "1|c4ca4238a0b923820dcc509a6f75849b" \
    "$(psql_proxy "$DB" -tA -c "SELECT id, v FROM big WHERE id = 1")" "a small read of big"
it_status_mark
base=$(rss_kib)
(
    while kill -0 "$PROXY_PID" 2>/dev/null; do
        rss_kib
        sleep 0.05
    done
) >"$IT_TMP/rss.log" 2>/dev/null &
sampler=$!
rc=0
psql_proxy "$DB" -tA -c "SELECT * FROM big" | LC_ALL=C sort >"$IT_TMP/big.sorted" || rc=$?
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
peak=$(sort -n "$IT_TMP/rss.log" | tail -n1)
peak=${peak:-$base}
it_log "pgdual RSS baseline $base KiB, peak $peak KiB over $(wc -l <"$IT_TMP/rss.log") samples"

assert_eq 0 "$rc" "SELECT * FROM big through pgdual succeeded"
assert_eq "$ROWS" "$(wc -l <"$IT_TMP/big.sorted")" "the client got $ROWS rows"
sum_proxy=$(md5sum <"$IT_TMP/big.sorted")
sum_old=$(psql_old "$DB" -tA -c "SELECT * FROM big" | LC_ALL=C sort | md5sum)
assert_eq "$sum_old" "$sum_proxy" "the rows' checksum equals old's (read directly)"
if ((peak - base < MAX_GROWTH_KIB)); then
    it_pass "pgdual RSS grew by $((peak - base)) KiB (< $MAX_GROWTH_KIB)"
else
    it_failed "pgdual RSS grew by $((peak - base)) KiB ($base -> $peak), want < $MAX_GROWTH_KIB"
fi
assert_delta reads_served_new -eq 1 "the big read was served by new"
assert_delta shadow_compares_total -ge 1 "and compared with old's" 60
assert_delta divergences_total -eq 0 "no divergence"
assert_delta fallbacks_total -eq 0 "no fallback"
assert_delta read_errors_after_stream_total -eq 0 "no error after streaming began"
it_proxy_stop
