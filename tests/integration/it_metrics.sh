#!/usr/bin/env bash
# tests/integration/it_metrics.sh: the metrics endpoint (DESIGN §8, issue 5): GET /metrics is
# valid Prometheus text (checked by tests/harness/promtext.py, a strict parser) whose counters
# equal SHOW STATUS at a quiet moment, with per-backend latency histograms that count every
# completed unit; GET /status is JSON equal to SHOW STATUS; dial changes show in both; other
# paths are 404, other methods 405.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "the metrics endpoint exists only in pgdual (PGDUAL_TEST_DIRECT=1)"
command -v python3 >/dev/null || it_fail "python3 is needed to parse the metrics"
PROMTEXT="$IT_HARNESS_DIR/promtext.py"

# http GET|HEAD|POST PATH OUTFILE: prints the status code; the body goes to OUTFILE and the
# response headers to OUTFILE.headers. curl if present, else python3's urllib.
http() {
    local method=$1 out=$3 url="http://127.0.0.1:$METRICS_PORT$2"
    if command -v curl >/dev/null; then
        local -a how=(-X "$method")
        [[ "$method" != HEAD ]] || how=(--head)
        curl -sS -m 10 "${how[@]}" -D "$out.headers" -o "$out" -w '%{http_code}' "$url"
    else
        python3 - "$method" "$url" "$out" <<'EOF'
import sys, urllib.request, urllib.error
method, url, out = sys.argv[1:]
req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
try:
    r = urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as e:
    r = e
open(out, "wb").write(r.read())
open(out + ".headers", "w").write("".join(f"{k}: {v}\r\n" for k, v in r.headers.items()))
print(r.status if hasattr(r, "status") else r.code, end="")
EOF
    fi
}

# The parser must reject what breaks the format, or its "valid" means nothing.
bad_inputs=(
    'pgdual_x 1\n'                                                         # no TYPE
    '# TYPE pgdual_x counter\npgdual_x{a="1"} 1\npgdual_x{a="1"} 2\n'      # series twice
    '# TYPE 1x counter\n1x 1\n'                                            # bad metric name
    '# TYPE pgdual_x counter\npgdual_x{a-b="1"} 1\n'                       # bad label name
    '# TYPE pgdual_x gauge\npgdual_x one\n'                                # bad value
    '# TYPE pgdual_x gauge\npgdual_x 1'                                    # no final newline
    '# TYPE pgdual_x gauge\n\npgdual_x 1\n'                                # blank line
    '# just a comment\n'                                                   # other comment
    '# TYPE pgdual_h histogram\npgdual_h_bucket{le="1"} 2\npgdual_h_bucket{le="+Inf"} 1\npgdual_h_sum 1\npgdual_h_count 1\n'
    '# TYPE pgdual_h histogram\npgdual_h_bucket{le="1"} 1\npgdual_h_bucket{le="+Inf"} 2\npgdual_h_sum 1\npgdual_h_count 3\n'
    '# TYPE pgdual_h histogram\npgdual_h_bucket{le="1"} 1\npgdual_h_sum 1\npgdual_h_count 1\n'
    '# TYPE pgdual_x gauge\npgdual_x 1\n# TYPE pgdual_y gauge\npgdual_y 1\npgdual_x{a="b"} 1\n'
)
for bad in "${bad_inputs[@]}"; do
    assert_fails "promtext.py rejects $(printf %q "$bad")" -- \
        python3 "$PROMTEXT" <(printf '%b' "$bad")
done
assert_ok "promtext.py accepts a valid histogram" -- python3 "$PROMTEXT" <(printf '%b' \
    '# HELP pgdual_h x\n# TYPE pgdual_h histogram\npgdual_h_bucket{le="1"} 1\npgdual_h_bucket{le="+Inf"} 2\npgdual_h_sum 1.5\npgdual_h_count 2\n')

DB=it_metrics
it_createdb "$DB"
METRICS_PORT=$(it_free_port)
it_proxy_start "metrics_port=$METRICS_PORT" cutover.read_new_percent=0 cutover.compare_percent=100
assert_contains "$(cat "$PROXY_LOG")" "metrics on http://127.0.0.1:$METRICS_PORT/metrics" \
    "pgdual announces the metrics endpoint"

# Reads and writes through pgdual, and one divergence of a known kind: a row only new has makes
# the UPDATE's tags differ (UPDATE 0 on old, UPDATE 1 on new).
psql_proxy "$DB" -q -c "CREATE TABLE t (id int PRIMARY KEY, v text)" \
    -c "INSERT INTO t VALUES (1, 'a'), (2, 'b')" -c "INSERT INTO t VALUES (3, 'c')" \
    -c "INSERT INTO t VALUES (4, random()::text)" >/dev/null
psql_new "$DB" -c "INSERT INTO t VALUES (99, 'only on new')"
for _ in 1 2 3; do
    psql_proxy "$DB" -tA -c "SELECT count(*) FROM t" -c "SELECT v FROM t WHERE id = 1" >/dev/null
done
psql_proxy "$DB" -q -c "UPDATE t SET v = 'z' WHERE id = 99" >/dev/null
psql_proxy "$DB" -q -c "CREATE TABLE nk (v text)" -c "INSERT INTO nk VALUES ('x')" \
    -c "UPDATE nk SET v = random()::text" >/dev/null # no key: cannot be pinned
assert_fails "a failing statement through pgdual" -- psql_proxy "$DB" -c "SELECT 1/0"

# Quiet moment: every client is gone once sessions_active drops to 0 (the admin console's own
# session is counted while SHOW STATUS runs, so /metrics is the judge here).
metrics_sessions() {
    [[ "$(http GET /metrics "$IT_TMP/m0")" == 200 ]] &&
        grep -qx 'pgdual_sessions_active 0' "$IT_TMP/m0"
}
it_wait_for 10 metrics_sessions || it_failed "sessions_active never came back to 0"

psql_admin "SHOW STATUS" >"$IT_TMP/status1"
assert_eq 200 "$(http GET /metrics "$IT_TMP/metrics.txt")" "GET /metrics is 200"
assert_eq 200 "$(http GET /status "$IT_TMP/status.json")" "GET /status is 200"
psql_admin "SHOW STATUS" >"$IT_TMP/status2"
assert_match "$(cat "$IT_TMP/metrics.txt.headers")" \
    $'[Cc]ontent-[Tt]ype: text/plain; version=0\\.0\\.4' "/metrics content type is 0.0.4 text"
assert_ok "/metrics parses as strict Prometheus text" -- \
    python3 "$PROMTEXT" "$IT_TMP/metrics.txt"
python3 "$PROMTEXT" "$IT_TMP/metrics.txt" >"$IT_TMP/samples" || true

# st FILE KEY: a SHOW STATUS value. m SERIES: a canonical sample value (labels sorted).
st() { awk -F'|' -v k="$2" '$1 == k { print $2 }' "$1"; }
m() { awk -v s="$1" '$1 == s { print $2 }' "$IT_TMP/samples"; }

stable=(statements_total reads_served_old reads_served_new writes_mirrored mirrored_served_old
    mirrored_served_new fallbacks_total shadow_compares_total shadow_timeouts_total
    divergences_total divergences_error_mismatch divergences_sqlstate_mismatch
    divergences_tag_mismatch divergences_result_mismatch nondeterministic_writes_total
    cancels_total protocol_errors_total auth_failures_total backend_failures_total
    secondary_failures_total)
for key in "${stable[@]}"; do
    assert_eq "$(st "$IT_TMP/status1" "$key")" "$(st "$IT_TMP/status2" "$key")" \
        "SHOW STATUS $key unchanged around the scrape (quiet moment)"
done
S=$IT_TMP/status1
assert_eq "$(st "$S" statements_total)" "$(m pgdual_statements_total)" "statements_total"
assert_eq "$(st "$S" reads_served_old)" \
    "$(m 'pgdual_statements_served_total{backend="old",class="read"}')" "reads served by old"
assert_eq "$(st "$S" reads_served_new)" \
    "$(m 'pgdual_statements_served_total{backend="new",class="read"}')" "reads served by new"
assert_eq "$(st "$S" mirrored_served_old)" \
    "$(m 'pgdual_statements_served_total{backend="old",class="mirrored"}')" \
    "mirrored statements served by old"
assert_eq "$(st "$S" mirrored_served_new)" \
    "$(m 'pgdual_statements_served_total{backend="new",class="mirrored"}')" \
    "mirrored statements served by new"
assert_eq "$(st "$S" writes_mirrored)" "$(m pgdual_writes_mirrored_total)" "writes_mirrored"
for reason in error timeout connection_lost; do
    assert_eq "$(st "$S" "fallbacks_$reason")" "$(m "pgdual_fallbacks_total{reason=\"$reason\"}")" \
        "fallbacks for reason $reason"
done
fell=$(awk '$1 ~ /^pgdual_fallbacks_total\{/ { n += $2 } END { print n + 0 }' "$IT_TMP/samples")
assert_eq "$(st "$S" fallbacks_total)" "$fell" "fallbacks_total is the sum over reasons"
assert_eq "$(st "$S" shadow_timeouts_total)" "$(m pgdual_shadow_timeouts_total)" \
    "shadow_timeouts_total"
for kind in error_mismatch sqlstate_mismatch tag_mismatch result_mismatch; do
    assert_eq "$(st "$S" "divergences_$kind")" \
        "$(m "pgdual_divergences_total{kind=\"$kind\"}")" "divergences of kind $kind"
done
assert_eq "$(st "$S" nondeterministic_writes_total)" \
    "$(m 'pgdual_divergences_total{kind="nondeterministic"}')" "nondeterministic writes"
compared=$(awk '$1 ~ /^pgdual_divergences_total\{/ && $1 !~ /nondeterministic/ { n += $2 }
    END { print n + 0 }' "$IT_TMP/samples")
assert_eq "$(st "$S" divergences_total)" "$compared" \
    "divergences_total is the sum of the four compared kinds"

# What the statements above must have produced (so the equalities are not all 0 = 0).
reads_old=$(st "$S" reads_served_old)
mirrored_old=$(st "$S" mirrored_served_old)
assert_eq 1 "$((reads_old >= 6))" "at least 6 reads served by old (got $reads_old)"
assert_eq 1 "$((mirrored_old >= 5))" "at least 5 mirrored statements served by old ($mirrored_old)"
assert_eq 1 "$(m 'pgdual_divergences_total{kind="tag_mismatch"}')" "the UPDATE's tag_mismatch"
assert_eq 1 "$(m pgdual_pinned_writes_total)" "the random() INSERT, pinned"
assert_eq 1 "$(m 'pgdual_divergences_total{kind="nondeterministic"}')" \
    "the random() UPDATE of a table without key (not pinned)"
assert_eq 0 "$(m pgdual_sessions_active)" "sessions_active gauge at the quiet moment"

# Latency histograms: old (the primary) observed every unit it completed, new (the secondary)
# every unit mirrored to it and every read shadowed on it (compare_percent = 100, nothing timed
# out, so each shadow run was compared).
hist=pgdual_statement_duration_seconds
assert_eq "$((reads_old + mirrored_old))" "$(m "${hist}_count{backend=\"old\"}")" \
    "old's histogram counts every unit old served"
assert_eq 1 "$(($(st "$S" shadow_compares_total) > 0))" "reads were shadowed on new"
assert_eq "$(($(st "$S" writes_mirrored) + $(st "$S" shadow_compares_total)))" \
    "$(m "${hist}_count{backend=\"new\"}")" \
    "new's histogram counts every unit mirrored to new and every shadow run there"
assert_eq "$(m "${hist}_count{backend=\"old\"}")" "$(m "${hist}_bucket{backend=\"old\",le=\"+Inf\"}")" \
    "+Inf bucket equals _count"
assert_match "$(m "${hist}_sum{backend=\"old\"}")" '^0\.[0-9]*[1-9][0-9]*$|^[1-9]' \
    "old's latency sum is positive"
# The UPDATE that came out differently on new (tag_mismatch) took new out of in_sync.
assert_eq 1 "$(m 'pgdual_secondary_state{state="diverged"}')" "secondary_state diverged = 1"
assert_eq "0 0 0 0" "$(m 'pgdual_secondary_state{state="in_sync"}') $(m 'pgdual_secondary_state{state="seeding"}') $(m 'pgdual_secondary_state{state="lagging"}') $(m 'pgdual_secondary_state{state="reconciling"}')" \
    "other secondary states = 0"
assert_eq "0 0" "$(m pgdual_journal_pending) $(m pgdual_secondary_lag_units)" \
    "journal_pending (no journal yet) and secondary_lag_units (nothing in flight now) are 0"

# /status: a JSON object holding exactly SHOW STATUS, with the same values.
assert_ok "/status parses as a JSON object" -- python3 -c '
import json, sys
assert isinstance(json.load(open(sys.argv[1])), dict)' "$IT_TMP/status.json"
python3 -c '
import json, sys
for k, v in json.load(open(sys.argv[1])).items():
    print(f"{k}|{v}")' "$IT_TMP/status.json" >"$IT_TMP/status_json" || true
assert_eq "$(cut -d'|' -f1 "$S")" "$(cut -d'|' -f1 "$IT_TMP/status_json")" \
    "/status has the SHOW STATUS keys in the same order"
for key in primary read_new_percent compare_percent mirror_order commit_wait \
    on_read_divergence mirror secondary_state "${stable[@]}"; do
    assert_eq "$(st "$S" "$key")" "$(st "$IT_TMP/status_json" "$key")" "/status $key"
done
assert_eq "0" "$(st "$IT_TMP/status_json" sessions_active)" "/status sessions_active"

# Dial changes reach both renderings.
psql_admin "SET read_new_percent = 40" >/dev/null
psql_admin "SET compare_percent = 15" >/dev/null
# new is diverged (the tag_mismatch above): switching the primary needs FORCE.
assert_fails "SET primary = new is refused while new is diverged" -- psql_admin "SET primary = new"
psql_admin "SET primary = new FORCE" >/dev/null
http GET /metrics "$IT_TMP/metrics2.txt" >/dev/null
python3 "$PROMTEXT" "$IT_TMP/metrics2.txt" >"$IT_TMP/samples" ||
    it_failed "/metrics after SET does not parse"
assert_eq "40 15" "$(m pgdual_read_new_percent) $(m pgdual_compare_percent)" "dial gauges"
assert_eq "0 1" "$(m 'pgdual_primary{backend="old"}') $(m 'pgdual_primary{backend="new"}')" \
    "primary gauge after SET primary = new"
http GET /status "$IT_TMP/status2.json" >/dev/null
psql_admin "SHOW STATUS" >"$IT_TMP/status3"
python3 -c '
import json, sys
for k, v in json.load(open(sys.argv[1])).items():
    print(f"{k}|{v}")' "$IT_TMP/status2.json" >"$IT_TMP/status_json" || true
for key in primary read_new_percent compare_percent dials_version; do
    assert_eq "$(st "$IT_TMP/status3" "$key")" "$(st "$IT_TMP/status_json" "$key")" \
        "/status $key after SET"
done
psql_admin "ROLLBACK CUTOVER FORCE" >/dev/null

# Paths and methods.
assert_eq 404 "$(http GET /nope "$IT_TMP/nope")" "GET /nope is 404"
assert_eq 404 "$(http GET /metrics/x "$IT_TMP/nope")" "GET /metrics/x is 404"
assert_eq 405 "$(http POST /metrics "$IT_TMP/post")" "POST /metrics is 405"
assert_match "$(cat "$IT_TMP/post.headers")" '[Aa]llow: GET, HEAD' "405 names the allowed methods"
assert_eq 200 "$(http HEAD /metrics "$IT_TMP/head")" "HEAD /metrics is 200"
# curl --head would not read a body anyway: ask over a raw socket what comes after the headers.
head_rest=$(python3 - "$METRICS_PORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"HEAD /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
head, sep, rest = data.partition(b"\r\n\r\n")
print(f"{head.split(b' ')[1].decode()} {len(rest)} {int(b'content-length: ' in head.lower())}")
EOF
)
assert_eq "200 0 1" "$head_rest" "HEAD /metrics: 200, a Content-Length, and no body bytes"

# Secondary lag: a write new cannot apply yet (its table locked on new) is one unit in flight
# on the secondary, in SHOW STATUS and /metrics; once new applied it, 0 again.
psql_proxy "$DB" -q -c "CREATE TABLE lagme (id int)"
psql_new "$DB" -q -c "BEGIN" -c "LOCK TABLE lagme IN EXCLUSIVE MODE" -c "SELECT pg_sleep(3)" \
    -c "COMMIT" >/dev/null 2>&1 &
locker=$!
sleep 0.5
psql_proxy "$DB" -q -c "INSERT INTO lagme VALUES (1)" >/dev/null 2>&1 &
writer=$!
lag_is() { [[ "$(psql_admin "SHOW STATUS" | awk -F'|' '$1 == "secondary_lag_units" { print $2 }')" == "$1" ]]; }
it_wait_for 2 lag_is 1 && it_pass "secondary_lag_units = 1 while new waits for its lock" ||
    it_failed "secondary_lag_units while new is blocked: $(psql_admin "SHOW STATUS" | grep lag_units)"
http GET /metrics "$IT_TMP/lag.txt" >/dev/null
assert_contains "$(cat "$IT_TMP/lag.txt")" "pgdual_secondary_lag_units 1" "and pgdual_secondary_lag_units 1 on /metrics"
wait "$writer" || it_failed "the blocked write failed"
wait "$locker" || true
it_wait_for 5 lag_is 0 && it_pass "secondary_lag_units back to 0 once new applied it" ||
    it_failed "secondary_lag_units after new applied the write"

it_proxy_stop
if [[ "$(http GET /metrics "$IT_TMP/after" 2>/dev/null || true)" == 200 ]]; then
    it_failed "the metrics endpoint still answers after pgdual stopped"
else
    it_pass "the metrics endpoint is gone with pgdual"
fi
