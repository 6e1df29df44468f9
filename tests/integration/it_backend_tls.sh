#!/usr/bin/env bash
# tests/integration/it_backend_tls.sh: a backend conninfo with sslmode=require works: libpq
# negotiates TLS at login, and pgdual then relays raw protocol bytes through that TLS session
# (small and large results, COPY out), with the backend really on TLS (pg_stat_ssl).
# sslmode=verify-full with sslrootcert: the right CA logs in, a wrong one leaves pgdual unable to
# reach old (and the client is told why). A client that stops reading a big COPY served over the
# TLS backend connection does not make pgdual buffer it (TLS reads are one record, 16 KiB, each:
# the high-water check must not be skipped for short reads).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_via_proxy || it_skip "backend TLS is pgdual's (PGDUAL_TEST_DIRECT=1)"

DB=it_backend_tls
it_createdb "$DB"

# A CA, a certificate for old signed by it (CN and SAN 127.0.0.1), another CA that signed nothing,
# and ssl = on (reset again at the end).
for ca in ca ca2; do
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 2 \
        -subj "/CN=pgdual test $ca" -keyout "$IT_TMP/$ca.key" -out "$IT_TMP/$ca.crt" 2>/dev/null
done
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=127.0.0.1" \
    -keyout "$IT_TMP/server.key" -out "$IT_TMP/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$IT_TMP/server.ext"
openssl x509 -req -in "$IT_TMP/server.csr" -CA "$IT_TMP/ca.crt" -CAkey "$IT_TMP/ca.key" \
    -CAcreateserial -days 2 -extfile "$IT_TMP/server.ext" -out "$IT_TMP/server.crt" 2>/dev/null
install -m 600 -o "$(stat -c %U "$OLD_DATA")" "$IT_TMP/server.key" "$OLD_DATA/server.key"
install -m 644 -o "$(stat -c %U "$OLD_DATA")" "$IT_TMP/server.crt" "$OLD_DATA/server.crt"
reset_ssl() { psql_old postgres -c "ALTER SYSTEM RESET ssl" -c "SELECT pg_reload_conf()" >/dev/null || true; }
trap 'rc=$?; reset_ssl; (exit $rc); it_cleanup' EXIT
psql_old postgres -c "ALTER SYSTEM SET ssl = on" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5

it_proxy_start "backends.old=host=127.0.0.1 port=$OLD_PORT sslmode=require"
assert_eq "t" "$(psql_proxy "$DB" -tA -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")" \
    "pgdual's backend connection to old uses TLS"
assert_eq "300000|300000000" \
    "$(psql_proxy "$DB" -tA -c "SELECT count(*), sum(length(repeat('x', 1000))) FROM generate_series(1, 300000)")" \
    "aggregate through TLS"
expected=$(psql_old "$DB" -tA -c "SELECT md5(string_agg(g::text || repeat('z', 200), ',' ORDER BY g)) FROM generate_series(1, 50000) g")
psql_proxy "$DB" -c "CREATE TABLE big AS SELECT g, g::text || repeat('z', 200) AS v FROM generate_series(1, 50000) g"
psql_proxy "$DB" -c "\\copy (SELECT v FROM big ORDER BY g) TO '$IT_TMP/out.txt'"
assert_eq "$expected" "$(paste -sd, "$IT_TMP/out.txt" | tr -d '\n' | md5sum | cut -d' ' -f1)" \
    "50,000 rows copied out through TLS, byte-exact"
it_proxy_stop

# verify-full against the CA that signed old's certificate.
it_proxy_start "backends.old=host=127.0.0.1 port=$OLD_PORT sslmode=verify-full sslrootcert=$IT_TMP/ca.crt"
assert_eq "t" "$(psql_proxy "$DB" -tA -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")" \
    "sslmode=verify-full with the right sslrootcert: old on TLS"

# Back-pressure over the TLS backend: the client stops reading a 1,000,000-row COPY.
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$PROXY_PID/status"; }
rss0=$(rss_kb)
mkfifo "$IT_TMP/copy.fifo"
PGAPPNAME=tls_backend_stalled psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" \
    -c "COPY (SELECT g, repeat('x', 100) FROM generate_series(1, 1000000) g) TO STDOUT" \
    >"$IT_TMP/copy.fifo" 2>"$IT_TMP/copy.err" &
copy_pid=$!
exec {stall_fd}<"$IT_TMP/copy.fifo" # opened, never read: psql blocks writing, stops reading
blocked() {
    [[ "$(psql_old postgres -tA -c "SELECT count(*) FROM pg_stat_activity WHERE \
        application_name = 'tls_backend_stalled' AND wait_event = 'ClientWrite'")" == 1 ]]
}
it_wait_for 60 blocked || it_fail "old's backend never blocked on ClientWrite (no back-pressure)"
rss1=$(rss_kb)
growth=$(((rss1 - rss0) / 1024))
it_log "pgdual RSS $rss0 kB -> $rss1 kB with a stalled client over a TLS backend"
assert_eq "1" "$((growth < 16))" "RSS growth under 16 MiB (${growth} MiB)"
exec {stall_fd}<&-
kill "$copy_pid" 2>/dev/null || true
wait "$copy_pid" 2>/dev/null || true
it_proxy_stop

# A root certificate that did not sign old's: pgdual cannot reach old and says so.
it_proxy_start "backends.old=host=127.0.0.1 port=$OLD_PORT sslmode=verify-full sslrootcert=$IT_TMP/ca2.crt"
assert_fails "wrong sslrootcert: no login through pgdual" -- psql_proxy "$DB" -tA -c "SELECT 1"
assert_contains "$IT_LAST_OUT" "cannot connect to the backend" "the client is told old is unreachable"
assert_contains "$IT_LAST_OUT" "certificate verify failed" "...and why"
assert_contains "$(cat "$PROXY_LOG")" "certificate verify failed" "pgdual's log says why"
it_proxy_stop
