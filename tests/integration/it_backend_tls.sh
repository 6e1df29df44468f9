#!/usr/bin/env bash
# tests/integration/it_backend_tls.sh: a backend conninfo with sslmode=require works: libpq
# negotiates TLS at login, and pgdual then relays raw protocol bytes through that TLS session
# (small and large results, COPY out), with the backend really on TLS (pg_stat_ssl).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_via_proxy || it_skip "backend TLS is pgdual's (PGDUAL_TEST_DIRECT=1)"

DB=it_backend_tls
it_createdb "$DB"

# A self-signed certificate for old, and ssl = on (reset again at the end).
openssl req -new -x509 -days 2 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$IT_TMP/server.key" -out "$IT_TMP/server.crt" >/dev/null 2>&1
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
