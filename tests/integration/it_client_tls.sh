#!/usr/bin/env bash
# tests/integration/it_client_tls.sh: client TLS (client_tls_* keys) with a CA and certificates
# made here: psql verify-full against pgdual's certificate, a wrong CA refused, SCRAM-SHA-256-PLUS
# (channel_binding=require), psycopg2 and node-postgres with sslmode=require writing through
# dual-write, a plaintext client refused under require, GSSENCRequest answered 'N', unencrypted
# bytes behind an SSLRequest refused, back-pressure of a TLS client that stops reading, and the
# certificate swapped by SIGHUP (new connections see it, a running TLS session keeps going; a
# reload naming a missing certificate is refused), prefer serving plain and TLS clients, and
# verify-ca requiring a client certificate from client_tls_ca_file.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_via_proxy || it_skip "client TLS is pgdual's (PGDUAL_TEST_DIRECT=1)"

DB=it_client_tls
PW='tls-Secret-1'
PY=/usr/bin/python3 # Debian's python3-psycopg2 lives there
it_createdb "$DB"
psql_old "$DB" -c "CREATE TABLE t (id int PRIMARY KEY, v text)" >/dev/null
psql_new "$DB" -c "CREATE TABLE t (id int PRIMARY KEY, v text)" >/dev/null

# ---- a CA, a second CA, a server certificate from each (CN/SAN 127.0.0.1, localhost) ----------
cd "$IT_TMP"
mkcert() { # mkcert NAME CA: NAME.key + NAME.crt signed by CA (or self-signed CA when CA = -)
    local name=$1 ca=$2
    if [[ "$ca" == - ]]; then
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 2 \
            -subj "/CN=pgdual test CA $name" -keyout "$name.key" -out "$name.crt" 2>/dev/null
        return
    fi
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -subj "/CN=127.0.0.1" -keyout "$name.key" -out "$name.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial -days 2 \
        -extfile "$name.ext" -out "$name.crt" 2>/dev/null
}
mkcert ca -
mkcert ca2 -
mkcert server1 ca
mkcert server2 ca2
mkcert client1 ca   # client certificates for verify-ca: one from the trusted CA,
mkcert client2 ca2  # one from another
chmod 600 ./*.key
cp server1.crt server.crt
cp server1.key server.key
fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
FP1=$(fp server1.crt)
FP2=$(fp server2.crt)
cd - >/dev/null

printf '"postgres" "%s"\n"admin" "%s"\n' "$PW" "$PW" >"$IT_TMP/userlist.txt"

# ---- a TLS mode without a certificate is a config error at start -----------------------------
it_write_ini "$IT_TMP/nocert.ini" pgdual.client_tls_sslmode=require
rc=0
"$PGDUAL_BIN" -c "$IT_TMP/nocert.ini" >"$IT_TMP/nocert.log" 2>&1 || rc=$?
assert_eq "1" "$((rc != 0))" "pgdual refuses to start with client_tls_sslmode = require and no cert"
assert_contains "$(cat "$IT_TMP/nocert.log")" "needs client_tls_cert_file and client_tls_key_file" \
    "the start error names the missing keys"

it_proxy_start pgdual.auth_type=scram-sha-256 pgdual.auth_file=userlist.txt \
    pgdual.workers=1 pgdual.client_login_timeout_ms=5000 pgdual.client_tls_sslmode=require pgdual.client_tls_cert_file=server.crt \
    pgdual.client_tls_key_file=server.key pgdual.client_tls_ca_file=ca.crt

# tls_psql CONNINFO-EXTRA SQL: psql through pgdual with the given libpq options.
tls_psql() {
    PGPASSWORD=$PW psql -X -w -v ON_ERROR_STOP=1 -tA \
        "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB $1" -c "$2"
}
admin_tls() {
    PGPASSWORD=$PW psql -X -w -v ON_ERROR_STOP=1 -tA \
        "host=127.0.0.1 port=$PROXY_PORT user=admin dbname=pgdual sslmode=require" -c "$1"
}
status_of() { admin_tls "SHOW STATUS" | awk -F'|' -v k="$1" '$1 == k { print $2 }'; }

# ---- psql verify-full, wrong CA, channel binding, plaintext refused ---------------------------
assert_eq "1" "$(tls_psql "sslmode=verify-full sslrootcert=$IT_TMP/ca.crt" "SELECT 1")" \
    "psql sslmode=verify-full with the right CA"
assert_eq "1" "$(tls_psql "sslmode=verify-full sslrootcert=$IT_TMP/ca.crt host=localhost" \
    "SELECT 1")" "verify-full by the DNS name in the SAN"
assert_fails "a wrong CA is refused" -- \
    tls_psql "sslmode=verify-full sslrootcert=$IT_TMP/ca2.crt" "SELECT 1"
assert_contains "$IT_LAST_OUT" "certificate verify failed" "wrong CA: verification error"
assert_eq "1" "$(tls_psql "sslmode=require channel_binding=require" "SELECT 1")" \
    "channel_binding=require succeeds: SCRAM-SHA-256-PLUS with tls-server-end-point"
assert_fails "wrong password over TLS" -- \
    env PGPASSWORD=wrong psql -X -w "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB \
    sslmode=require channel_binding=require" -c "SELECT 1"
assert_contains "$IT_LAST_OUT" "authentication failed" "wrong password with -PLUS: auth error"
assert_fails "plaintext refused under require" -- tls_psql "sslmode=disable" "SELECT 1"
assert_contains "$IT_LAST_OUT" "SSL required" "plaintext: FATAL SSL required"
n_tls=$(status_of tls_clients_total)
assert_eq "1" "$((n_tls >= 5))" "tls_clients_total counts the TLS logins ($n_tls)"

# ---- raw protocol: GSSENCRequest, SSLRequest with bytes behind it -----------------------------
"$PY" - "$PROXY_PORT" >"$IT_TMP/raw.out" 2>&1 <<'EOF' || it_fail "raw checks: $(cat "$IT_TMP/raw.out")"
import socket, struct, sys
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s
def recv_all(s):
    out = b""
    while True:
        b = s.recv(4096)
        if not b:
            return out
        out += b
ssl_req = struct.pack("!II", 8, 80877103)
gss_req = struct.pack("!II", 8, 80877104)
params = b"user\0postgres\0database\0it_client_tls\0\0"
startup = struct.pack("!II", 8 + len(params), 196608) + params
# 1. GSSENCRequest -> 'N'; then SSLRequest -> 'S'.
s = conn(); s.sendall(gss_req); assert s.recv(1) == b"N", "GSS: want N"
s.sendall(ssl_req); assert s.recv(1) == b"S", "SSL after GSS: want S"; s.close()
# 2. GSSENCRequest -> 'N'; then a plaintext startup packet -> FATAL 28000 SSL required.
s = conn(); s.sendall(gss_req); assert s.recv(1) == b"N"
s.sendall(startup); r = recv_all(s)
assert r[:1] == b"E" and b"C28000\0" in r and b"SSL required" in r, r
# 3. GSSENCRequest twice: a protocol error.
s = conn(); s.sendall(gss_req); assert s.recv(1) == b"N"
s.sendall(gss_req); r = recv_all(s); assert r[:1] == b"E" and b"C08P01\0" in r, r
# 4. SSLRequest with a startup packet behind it in one write: refused, no 'S'.
s = conn(); s.sendall(ssl_req + startup); r = recv_all(s)
assert r[:1] == b"E" and b"unencrypted data after SSL request" in r, r
print("raw ok")
EOF
assert_eq "raw ok" "$(cat "$IT_TMP/raw.out")" "GSSENCRequest 'N' then SSL or startup; stuffing refused"
assert_contains "$(cat "$PROXY_LOG")" "received unencrypted data after SSL request" \
    "the stuffing attempt is logged"

# ---- a client that stalls mid-handshake blocks nobody and is cut by client_login_timeout_ms ---
"$PY" - "$PROXY_PORT" >"$IT_TMP/stall.out" 2>&1 <<'EOF' &
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(struct.pack("!II", 8, 80877103))
assert s.recv(1) == b"S"
s.sendall(b"\x16\x03\x01\x02") # the start of a ClientHello record, then nothing
print("stalled", flush=True)
t0 = time.monotonic()
assert s.recv(100) == b""
print("closed after %.1f s" % (time.monotonic() - t0), flush=True)
EOF
stall_pid=$!
stalled() { grep -q '^stalled' "$IT_TMP/stall.out"; }
it_wait_for 10 stalled || it_fail "stall client: $(cat "$IT_TMP/stall.out")"
# Same worker (workers = 1): a login completes while the handshake above hangs.
assert_eq "1" "$(tls_psql "sslmode=require" "SELECT 1")" "a login goes on beside a stalled handshake"
assert_eq "stalled" "$(cat "$IT_TMP/stall.out")" "...while that handshake still hangs"
wait "$stall_pid" || it_fail "stall client: $(cat "$IT_TMP/stall.out")"
assert_match "$(cat "$IT_TMP/stall.out")" "closed after" "the stalled handshake was cut"
assert_contains "$(cat "$PROXY_LOG")" "client login timeout" "...by client_login_timeout_ms"

# ---- psycopg2 and node-postgres with sslmode=require, through dual-write ----------------------
"$PY" - "$PROXY_PORT" "$PW" >"$IT_TMP/py.out" 2>&1 <<'EOF' || it_fail "psycopg2: $(cat "$IT_TMP/py.out")"
import sys, psycopg2
c = psycopg2.connect(host="127.0.0.1", port=int(sys.argv[1]), user="postgres",
                     password=sys.argv[2], dbname="it_client_tls", sslmode="require")
assert c.info.ssl_in_use
cur = c.cursor()
cur.execute("SELECT %s::int + 1", (41,)); assert cur.fetchone()[0] == 42
cur.execute("INSERT INTO t VALUES (%s, %s)", (1, "psycopg2")); c.commit()
cur.execute("PREPARE ins(int, text) AS INSERT INTO t VALUES ($1, $2)")
cur.execute("EXECUTE ins(2, 'psycopg2 prepared')"); c.commit()
cur.execute("SELECT count(*) FROM t"); assert cur.fetchone()[0] == 2
c.close()
print("psycopg2 ok")
EOF
assert_eq "psycopg2 ok" "$(cat "$IT_TMP/py.out")" "psycopg2 sslmode=require: SELECT, INSERT, PREPARE"

NODE_PG=${PGDUAL_NODE_PATH:-}
if command -v node >/dev/null && NODE_PATH=$NODE_PG node -e 'require("pg")' 2>/dev/null; then
    NODE_PATH=$NODE_PG node - "$PROXY_PORT" "$PW" >"$IT_TMP/node.out" 2>&1 <<'EOF' ||
const { Client } = require("pg");
(async () => {
  const c = new Client({ host: "127.0.0.1", port: +process.argv[2], user: "postgres",
    password: process.argv[3], database: "it_client_tls", ssl: { rejectUnauthorized: false } });
  await c.connect();
  const r = await c.query("SELECT $1::int + 1 AS n", [41]);
  if (r.rows[0].n !== 42) throw new Error("select");
  await c.query("INSERT INTO t VALUES ($1, $2)", [3, "node"]);
  await c.query({ name: "ins", text: "INSERT INTO t VALUES ($1, $2)", values: [4, "node prepared"] });
  await c.query({ name: "ins", text: "INSERT INTO t VALUES ($1, $2)", values: [5, "node prepared"] });
  await c.end();
  console.log("node ok");
})().catch((e) => { console.error(e); process.exit(1); });
EOF
        it_fail "node-postgres: $(cat "$IT_TMP/node.out")"
    assert_eq "node ok" "$(cat "$IT_TMP/node.out")" "node-postgres ssl: SELECT, INSERT, named statement"
    want_rows=5
elif [[ "${PGDUAL_NODE_SKIP:-0}" == 1 ]]; then
    it_log "node-postgres skipped (PGDUAL_NODE_SKIP=1)"
    want_rows=2
else
    it_fail "node-postgres (npm pg) not found in PGDUAL_NODE_PATH=$NODE_PG: run tools/install-deps.sh (or set PGDUAL_NODE_SKIP=1)"
    want_rows=2
fi
rows_old=$(psql_old "$DB" -tA -c "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM t")
assert_eq "$want_rows" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM t")" "rows on old"
assert_eq "$rows_old" "$(psql_new "$DB" -tA -c "SELECT string_agg(id || ':' || v, ',' ORDER BY id) \
    FROM t")" "the same rows on new"

# ---- back-pressure: a TLS client that stops reading a 1,000,000-row COPY ----------------------
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$PROXY_PID/status"; }
rss0=$(rss_kb)
mkfifo "$IT_TMP/copy.fifo"
PGPASSWORD=$PW psql -X -w "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB \
    sslmode=require application_name=tls_stalled" \
    -c "COPY (SELECT g, repeat('x', 100) FROM generate_series(1, 1000000) g) TO STDOUT" \
    >"$IT_TMP/copy.fifo" 2>"$IT_TMP/copy.err" &
copy_pid=$!
exec {stall_fd}<"$IT_TMP/copy.fifo" # opened, never read: psql blocks writing, stops reading
# Back-pressure reached old once its backend waits to write to pgdual.
blocked() {
    [[ "$(psql_old postgres -tA -c "SELECT count(*) FROM pg_stat_activity WHERE \
        application_name = 'tls_stalled' AND wait_event = 'ClientWrite'")" == 1 ]]
}
it_wait_for 60 blocked || it_fail "old's backend never blocked on ClientWrite (no back-pressure)"
rss1=$(rss_kb)
growth=$(((rss1 - rss0) / 1024))
it_log "pgdual RSS $rss0 kB -> $rss1 kB with a stalled TLS COPY"
assert_eq "1" "$((growth < 16))" "RSS growth under 16 MiB while the TLS client stalls (${growth} MiB)"
exec {stall_fd}<&-
kill "$copy_pid" 2>/dev/null || true
wait "$copy_pid" 2>/dev/null || true

# ---- SIGHUP swaps the certificate for new connections; a running TLS session keeps going -----
served_fp() {
    openssl s_client -starttls postgres -connect "127.0.0.1:$PROXY_PORT" </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}
assert_eq "$FP1" "$(served_fp)" "openssl s_client -starttls postgres sees certificate 1"
PGSSLMODE=require PGPASSWORD=$PW it_session_open s1 "$DB"
it_session_send s1 "SELECT 'before-' || 1;"
it_session_wait s1 "before-1" || it_fail "TLS session did not answer: $(cat "$IT_TMP/s1.out")"
reloads_done() { [[ "$(grep -cE 'reloaded |reload refused' "$PROXY_LOG")" -ge "$1" ]]; }
hup_and_wait() {
    local before
    before=$(grep -cE 'reloaded |reload refused' "$PROXY_LOG" || true)
    kill -HUP "$PROXY_PID"
    it_wait_for 10 reloads_done $((before + 1)) || it_fail "no reload outcome after SIGHUP"
}
cp "$IT_TMP/server2.crt" "$IT_TMP/server.crt"
cp "$IT_TMP/server2.key" "$IT_TMP/server.key"
hup_and_wait
assert_eq "$FP2" "$(served_fp)" "after SIGHUP a new connection sees certificate 2"
assert_eq "1" "$(tls_psql "sslmode=verify-full sslrootcert=$IT_TMP/ca2.crt" "SELECT 1")" \
    "verify-full with CA 2 after the swap"
assert_fails "CA 1 no longer verifies" -- \
    tls_psql "sslmode=verify-full sslrootcert=$IT_TMP/ca.crt" "SELECT 1"
it_session_send s1 "SELECT 'after-' || 2;"
it_session_wait s1 "after-2" || it_fail "the TLS session broke at the swap: $(cat "$IT_TMP/s1.out")"
it_session_close s1

# A reload whose certificate cannot be loaded is refused; the running context stays.
sed -i "s|^client_tls_cert_file = .*|client_tls_cert_file = $IT_TMP/missing.crt|" "$PROXY_INI"
hup_and_wait
assert_contains "$(grep 'reload refused' "$PROXY_LOG" | tail -1)" "client_tls_cert_file" \
    "reload with a missing certificate refused, naming the key"
assert_eq "$FP2" "$(served_fp)" "still certificate 2 after the refused reload"
assert_eq "1" "$(tls_psql "sslmode=require channel_binding=require" "SELECT 1")" \
    "logins go on after the refused reload"

# prefer (reloaded): TLS for clients that ask, plain text still served to those that do not.
sed -i -e "s|^client_tls_cert_file = .*|client_tls_cert_file = server.crt|" \
    -e "s|^client_tls_sslmode = .*|client_tls_sslmode = prefer|" "$PROXY_INI"
hup_and_wait
assert_eq "1" "$(tls_psql "sslmode=disable" "SELECT 1")" "prefer: a plaintext client is served"
assert_eq "1" "$(tls_psql "sslmode=verify-full sslrootcert=$IT_TMP/ca2.crt" "SELECT 1")" \
    "prefer: a TLS client gets TLS"
assert_fails "channel binding needs TLS (client side)" -- \
    tls_psql "sslmode=disable channel_binding=require" "SELECT 1"

# verify-ca (reloaded): a client certificate signed by client_tls_ca_file is required.
sed -i -e "s|^client_tls_sslmode = .*|client_tls_sslmode = verify-ca|" "$PROXY_INI"
hup_and_wait
assert_contains "$(grep -E 'reloaded |reload refused' "$PROXY_LOG" | tail -1)" "reloaded" \
    "verify-ca reload applied"
assert_eq "1" "$(tls_psql "sslmode=require sslcert=$IT_TMP/client1.crt \
    sslkey=$IT_TMP/client1.key" "SELECT 1")" "verify-ca: a certificate from the CA logs in"
assert_fails "verify-ca: no client certificate refused" -- tls_psql "sslmode=require" "SELECT 1"
assert_fails "verify-ca: a certificate from another CA refused" -- \
    tls_psql "sslmode=require sslcert=$IT_TMP/client2.crt sslkey=$IT_TMP/client2.key" "SELECT 1"
assert_fails "verify-ca: plaintext refused" -- tls_psql "sslmode=disable" "SELECT 1"
assert_contains "$IT_LAST_OUT" "SSL required" "verify-ca: plaintext gets SSL required"
assert_contains "$(cat "$PROXY_LOG")" "TLS handshake failed" "the refused handshakes are logged"
it_proxy_stop
