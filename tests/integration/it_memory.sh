#!/usr/bin/env bash
# tests/integration/it_memory.sh: bounded memory per session (issue 14 item 5), measured on
# pgdual's VmRSS / VmSize (/proc/PID/status). pgdual runs with MALLOC_CONF=dirty_decay_ms:0,
# muzzy_decay_ms:0 so that jemalloc gives freed pages back at once and RSS shows what is live
# (the sanitizer builds use their own allocator, which ignores it).
#  1. Headers declaring 60 MiB (under max_message_bytes) with 10 bytes after them, on 16
#     sessions: nothing is allocated for the declared length (VmSize stays within 64 MiB, where
#     reserving it would take 960 MiB); a client closing mid-message is a protocol violation.
#  2. A header declaring 1 GiB (over max_message_bytes, 64 MiB by default): 08P01 at once; other sessions go on.
#  3. A client that stops reading a 1,000,000-row SELECT (plain relay, then a shadowed read): peak RSS
#     (VmHWM) stays within 16 MiB of the RSS before, the backend blocked in ClientWrite (and not
#     finishing its answer within 2 s); then the client reads every row.
#  4. A routed read served by new whose answer is one 30 MB DataRow (fallback_buffer_bytes
#     1 MiB): held no further than the bound, it streams; the client not reading keeps RSS
#     growth < 16 MiB; then it gets all 30,000,000 bytes (read_timeout_ms is raised so that a
#     slow host does not fall back before the first byte).
#  5. A 20 MB INSERT (its value in one Bind message; 100 MB takes PostgreSQL itself too long
#     for this suite): afterwards, its session still open, RSS falls back to within 16 MiB of
#     what it was before (kept, the session's buffers would hold 2 x 32 MiB).
#  6. Case 3 again with old behind TLS, and (6b) with the client on TLS (it_tls_relay.py in front of it): every read of the
#     primary is short (one TLS record), and back-pressure holds all the same.
#  7. max_session_statements = 16: a 17th prepared statement ends the session with 54000.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "pgdual's memory is measured (PGDUAL_TEST_DIRECT=1)"
it_mirrors || it_skip "the routed read needs both backends (PGDUAL_MIRRORS=0)"

CLIENT="python3 $(dirname "$0")/it_memclient.py"
DB=it_memory
it_createdb "$DB"
psql_old "$DB" -c "CREATE TABLE big (v text)"
psql_new "$DB" -c "CREATE TABLE big (v text)"

export MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0
it_proxy_start cutover.compare_percent=0 workers=1
unset MALLOC_CONF

# A sanitizer's allocator keeps freed memory in quarantine and maps shadow memory: there the
# figures are logged, not judged (the behaviour around them still is).
SANITIZED=0
if grep -qa __asan_init "$PGDUAL_BIN"; then SANITIZED=1; fi
# within WHAT DELTA_KB LIMIT_KB: the growth DELTA_KB stays under LIMIT_KB.
within() {
    if ((SANITIZED)); then
        it_log "$1: +$(($2 / 1024)) MiB (not judged: sanitizer build)"
    elif (($2 < $3)); then
        it_pass "$1: +$(($2 / 1024)) MiB (< $(($3 / 1024)) MiB)"
    else
        it_failed "$1: +$(($2 / 1024)) MiB, want < $(($3 / 1024)) MiB"
    fi
}
kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PROXY_PID/status"; }
# blocked DB PORTVAR: the backend on that cluster is blocked writing to pgdual.
blocked() {
    local out
    out=$(psql -X -tA -h 127.0.0.1 -p "$1" -U postgres -d "$DB" -c \
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'ClientWrite' AND query LIKE '%memtest%'")
    [[ "$out" -ge 1 ]]
}
# finished PORT: no backend of that cluster runs the test's query any more (pgdual took it all).
finished() {
    local out
    out=$(psql -X -tA -h 127.0.0.1 -p "$1" -U postgres -d "$DB" -c \
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%memtest%' AND pid <> pg_backend_pid()")
    [[ "$out" -eq 0 ]]
}
# held PORT: the backend blocked writing, and it stays so (a pgdual that buffered the whole answer
# would let it finish within 2 s): then VmHWM - rss0 is the growth while the client did not read.
held() {
    it_wait_for 30 blocked "$1" || it_failed "the backend on port $1 never blocked writing"
    if it_wait_for 2 finished "$1"; then
        it_log "the backend on port $1 finished its answer: pgdual took all of it"
    fi
}

# start NAME CMD...: CMD in the background, its output in $IT_TMP/NAME.out (pid in BG_PID).
start() {
    local name=$1
    shift
    "$@" >"$IT_TMP/$name.out" &
    BG_PID=$!
}
# sent NAME: the client printed "sent" (polled, 60 s at most).
sent() { grep -qx sent "$IT_TMP/$1.out"; }

# ---- 1. declared lengths allocate nothing ------------------------------------------------------
GO="$IT_TMP/go1"
vm0=$(kb VmSize)
GOFILE="$GO" start hdr $CLIENT header "$PROXY_PORT" "$DB" $((60 * 1024 * 1024)) 10 16
it_wait_for 60 sent hdr || it_fail "the header client did not start"
it_pass "16 sessions sent a header declaring 60 MiB and 10 bytes"
psql_proxy "$DB" -tA -c "SELECT 1" >/dev/null # one round trip: every header has been read
vm1=$(kb VmSize)
it_log "VmSize ${vm0} kB -> ${vm1} kB"
within "VmSize for 16 x 60 MiB declared (reserving would take 960 MiB)" $((vm1 - vm0)) $((64 * 1024))
it_status_mark
touch "$GO"
wait "$BG_PID" || it_failed "the header client failed"
codes=$(grep -vx sent "$IT_TMP/hdr.out" | sort | uniq -c | awk '{print $2 "x" $1}')
# The client is gone: pgdual has nobody to send its FATAL to (the socket is half closed).
assert_eq "eofx16" "$codes" "each session ended when its client stopped inside the message"
assert_delta protocol_errors_total -eq 16 "counted as protocol errors"

# ---- 2. over max_message_bytes: closed before anything is read ---------------------------------
GO="$IT_TMP/go2"
touch "$GO"
rss0=$(kb VmRSS)
out=$(GOFILE="$GO" $CLIENT header "$PROXY_PORT" "$DB" $((1024 * 1024 * 1024)) 10 1 | tail -n1)
assert_eq 08P01 "$out" "a header declaring 1 GiB closes the client with 08P01"
assert_contains "$(cat "$PROXY_LOG")" "invalid message length (max_message_bytes is 67108864)" "the log says why"
rss1=$(kb VmRSS)
within "RSS after a 1 GiB header" $((rss1 - rss0)) 4096
assert_eq 1 "$(psql_proxy "$DB" -tA -c "SELECT 1")" "other sessions go on"

# ---- 3. a client that stops reading a big answer -----------------------------------------------
# 1,000,000 rows (the issue's figure), ~57 MB on the wire.
SQL="SELECT 'memtest', repeat('x', 40) FROM generate_series(1, 1000000)"
ROWS_LINE="rows=1000000 bytes=$((1000000 * 57))" # DataRow body: 2 (count) + 4 + 7 + 4 + 40 bytes
for mode in relay shadow; do
    if [[ $mode == shadow ]]; then
        it_dials compare_percent=100
    fi
    GO="$IT_TMP/go3$mode"
    rss0=$(kb VmRSS)
    start hold $CLIENT hold "$PROXY_PORT" "$DB" "$GO" "$SQL"
    it_wait_for 60 sent hold || it_fail "$mode: the client did not start"
    it_pass "$mode: the client sent a 1,000,000-row SELECT and reads nothing"
    held "$OLD_PORT"
    rss1=$(kb VmHWM)
    it_log "$mode: VmRSS ${rss0} kB, peak since ${rss1} kB with old blocked"
    within "$mode: RSS while old is blocked" $((rss1 - rss0)) $((16 * 1024))
    touch "$GO"
    wait "$BG_PID" || it_failed "$mode: the client failed"
    line=$(tail -n1 "$IT_TMP/hold.out")
    assert_eq "$ROWS_LINE" "$line" "$mode: then it reads every row"
done
it_dials compare_percent=0

# ---- 4. one huge DataRow of a routed read --------------------------------------------------------
it_dials read_new_percent=100 fallback_buffer_bytes=1048576 read_timeout_ms=60000
GO="$IT_TMP/go4"
rss0=$(kb VmRSS)
it_status_mark
start hold $CLIENT hold "$PROXY_PORT" "$DB" "$GO" "SELECT 'memtest', repeat('y', 30000000)"
it_wait_for 60 sent hold || it_fail "routed: the client did not start"
it_pass "routed: the client asked for one 30 MB row and reads nothing"
held "$NEW_PORT"
rss1=$(kb VmHWM)
within "routed: RSS inside the 30 MB DataRow" $((rss1 - rss0)) $((16 * 1024))
touch "$GO"
wait "$BG_PID" || it_failed "routed: the client failed"
line=$(tail -n1 "$IT_TMP/hold.out")
assert_eq "rows=1 bytes=$((2 + 4 + 7 + 4 + 30000000))" "$line" "routed: the client gets the whole row"
assert_delta reads_served_new -eq 1 "served by new (streamed, no fallback)"
assert_delta fallbacks_total -eq 0 "no fallback"
it_dials read_new_percent=0

# ---- 5. buffers shrink after a big message --------------------------------------------------------
GO="$IT_TMP/go5"
rss0=$(kb VmRSS)
GOFILE="$GO" start ins $CLIENT insert "$PROXY_PORT" "$DB" big 20000000
inserted() { grep -qx "INSERT 0 1" "$IT_TMP/ins.out"; }
it_wait_for 60 inserted || it_failed "the 20 MB INSERT: $(cat "$IT_TMP/ins.out")"
it_pass "a 20 MB INSERT, its session still open"
small() { (($(kb VmRSS) - rss0 < 16 * 1024)); }
if ((SANITIZED)); then
    it_log "RSS after the INSERT: $(kb VmRSS) kB, before ${rss0} kB (not judged: sanitizer build)"
elif it_wait_for 10 small; then
    it_pass "RSS back within 16 MiB of ${rss0} kB ($(kb VmRSS) kB)"
else
    it_failed "RSS stays at $(kb VmRSS) kB after the INSERT (before: ${rss0} kB)"
fi
touch "$GO"
wait "$BG_PID" || it_failed "the INSERT client failed"
assert_eq "20000000|20000000" "$(psql_old "$DB" -tA -c "SELECT length(v) FROM big")|$(psql_new "$DB" -tA -c "SELECT length(v) FROM big")" "on both sides"

# ---- 6. the same client, the primary reached through TLS -------------------------------------------
# pgdual's reads from old return one TLS record (16 KiB) at a time: each of them is a short read.
openssl req -new -x509 -days 2 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$IT_TMP/relay.key" -out "$IT_TMP/relay.crt" >/dev/null 2>&1
python3 "$(dirname "$0")/it_tls_relay.py" "$IT_TMP/relay.crt" "$IT_TMP/relay.key" "$OLD_PORT" "$IT_TMP/relay.port" &
RELAY_PID=$!
trap 'rc=$?; kill "$RELAY_PID" 2>/dev/null || true; (exit $rc); it_cleanup' EXIT
relay_up() { [[ -s "$IT_TMP/relay.port" ]]; }
it_wait_for 10 relay_up || it_fail "the TLS relay did not start"
export MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0
it_proxy_start cutover.compare_percent=0 workers=1 max_session_statements=16 \
    "backends.old=host=127.0.0.1 port=$(cat "$IT_TMP/relay.port") sslmode=require" \
    pgdual.client_tls_sslmode=allow "pgdual.client_tls_cert_file=$IT_TMP/relay.crt" \
    "pgdual.client_tls_key_file=$IT_TMP/relay.key"
unset MALLOC_CONF
GO="$IT_TMP/go6"
rss0=$(kb VmRSS)
start hold $CLIENT hold "$PROXY_PORT" "$DB" "$GO" "$SQL"
it_wait_for 60 sent hold || it_fail "tls: the client did not start"
it_pass "tls: the client sent a 1,000,000-row SELECT, its primary behind TLS, and reads nothing"
held "$OLD_PORT"
rss1=$(kb VmHWM)
within "tls: RSS while old is blocked" $((rss1 - rss0)) $((16 * 1024))
touch "$GO"
wait "$BG_PID" || it_failed "tls: the client failed"
assert_eq "$ROWS_LINE" "$(tail -n1 "$IT_TMP/hold.out")" "tls: then it reads every row"

# ---- 6b. the client itself on TLS stops reading (each write to it is a TLS record) ---------------
GO="$IT_TMP/go6b"
rss0=$(kb VmRSS)
MEMCLIENT_TLS=1 start hold $CLIENT hold "$PROXY_PORT" "$DB" "$GO" "$SQL"
it_wait_for 60 sent hold || it_fail "client tls: the client did not start"
it_pass "client tls: a TLS client sent a 1,000,000-row SELECT and reads nothing"
held "$OLD_PORT"
rss1=$(kb VmHWM)
within "client tls: RSS while old is blocked" $((rss1 - rss0)) $((16 * 1024))
touch "$GO"
wait "$BG_PID" || it_failed "client tls: the client failed"
assert_eq "$ROWS_LINE" "$(tail -n1 "$IT_TMP/hold.out")" "client tls: then it reads every row"
assert_contains "$(head -n1 "$IT_TMP/hold.out")" "tls TLSv1." "the client did use TLS"

# ---- 7. max_session_statements -----------------------------------------------------------------
assert_eq ok "$($CLIENT prepare "$PROXY_PORT" "$DB" 16)" "16 prepared statements (max_session_statements = 16)"
assert_eq 54000 "$($CLIENT prepare "$PROXY_PORT" "$DB" 17)" "the 17th: FATAL 54000"
assert_contains "$(cat "$PROXY_LOG")" "too many prepared statements or portals in this session: max_session_statements is 16" "the log says why"
assert_eq 1 "$(psql_proxy "$DB" -tA -c "SELECT 1")" "other sessions go on"

it_proxy_stop
kill "$RELAY_PID" 2>/dev/null || true
