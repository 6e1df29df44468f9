#!/usr/bin/env bash
# tests/integration/it_reads_stream.sh: the secondary's answer held for fallback, and past
# fallback_buffer_bytes. A view `late_fail` fails on new only, after thousands of rows. With the
# answer small enough to hold (the default 1 MiB), new's failure falls back: the client gets old's
# complete answer. With fallback_buffer_bytes = 1000 the rows already streamed to the client when
# new fails: the client gets new's error (no answer is ever a mix of the two sides) and it is
# counted in read_errors_after_stream_total, not as a fallback.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "the read dial exists only in pgdual (PGDUAL_TEST_DIRECT=1)"
it_mirrors || it_skip "the read dial needs both backends (PGDUAL_MIRRORS=0)"

DB=it_reads_stream
it_createdb "$DB"
psql_old "$DB" -q -c "CREATE VIEW late_fail AS SELECT g, 1 AS one FROM generate_series(1, 20000) g"
psql_new "$DB" -q -c "CREATE VIEW late_fail AS SELECT g, 1 / (g - 15000) AS one FROM generate_series(1, 20000) g"
# Directly: new really streams rows before it fails (COPY TO STDOUT prints rows as they come).
partial=$(psql_new "$DB" -tA -c "COPY (SELECT g, one FROM late_fail) TO STDOUT" 2>/dev/null | wc -l || true)
if ((partial > 1000 && partial < 20000)); then it_pass "new sends $partial rows before its error"; else it_failed "new sent $partial rows before failing, want 1000-19999"; fi

it_proxy_start cutover.read_new_percent=100 cutover.compare_percent=0

it_status_mark
out=$(psql_proxy "$DB" -tA -c "SELECT count(*) || ':' || sum(one) FROM (SELECT * FROM late_fail) s" 2>&1 || true)
assert_eq "20000:20000" "$out" "an aggregate over the failing view (a small answer) is old's"
assert_delta fallbacks_error -eq 1 "it fell back on new's error"

it_status_mark
rows=$(psql_proxy "$DB" -tA -c "SELECT g, one FROM late_fail" 2>"$IT_TMP/held.err" | wc -l || true)
assert_eq 20000 "$rows" "with the answer held (it is under fallback_buffer_bytes), the client gets old's 20000 rows"
assert_eq "" "$(cat "$IT_TMP/held.err")" "and no error"
assert_delta fallbacks_error -eq 1 "counted as a fallback for an error"
assert_delta read_errors_after_stream_total -eq 0 "nothing streamed before the failure"

psql_admin "SET fallback_buffer_bytes = 1000" >/dev/null
sleep 0.5
it_status_mark
if psql_proxy "$DB" -tA -c "SELECT g, one FROM late_fail" >"$IT_TMP/streamed.out" 2>"$IT_TMP/streamed.err"; then
    it_failed "the streamed read succeeded although new failed mid-answer"
else
    it_pass "past fallback_buffer_bytes the read fails with new's error"
fi
assert_contains "$(cat "$IT_TMP/streamed.err")" "division by zero" "the client sees new's error"
assert_delta read_errors_after_stream_total -eq 1 "counted in read_errors_after_stream_total"
assert_delta fallbacks_total -eq 0 "not as a fallback"
assert_eq "ok" "$(psql_proxy "$DB" -tA -c "SELECT 'ok'")" "the session's next statement works"
it_proxy_stop
