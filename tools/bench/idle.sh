#!/usr/bin/env bash
# tools/bench/idle.sh: what idle sessions cost pgdual and how the relay scales with connections
# (issue 15 item 5). On a scratch cluster pair (tests/harness/pgcluster.sh) with max_connections
# raised, it starts pgdual (workers = 2, mirror on: both backend connections per session), opens
# N idle sessions (raw protocol, trust auth) and prints pgdual's RSS per idle session (VmRSS
# growth / N, jemalloc with its default settings: MALLOC_CONF from the environment, if any, is
# passed on); then, with mirror = off (relay mode), the tps of pgbench -S -M simple -c C -j 2 for
# each C, run for SECS seconds plus 0.1 s per client: pgbench's -T counts its connection set-up,
# which takes PostgreSQL tens of milliseconds per connection on a small host.
#
#     tools/bench/idle.sh [--sessions N] [--clients "100 500 1000"] [--seconds 10] [BUILD_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=1000
CLIENTS="100 500 1000"
SECS=10
BUILD=$ROOT/build
while (($#)); do
    case $1 in
    --sessions) N=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    *) BUILD=$1; shift ;;
    esac
done
PGC=$ROOT/tests/harness/pgcluster.sh
DIR=$(mktemp -d /tmp/pgdual-idle.XXXXXX)
chmod 755 "$DIR"
ulimit -n 20000
PGDUAL_PID=""
cleanup() {
    [[ -z "$PGDUAL_PID" ]] || kill "$PGDUAL_PID" 2>/dev/null || true
    [[ -z "${HOLD_PID:-}" ]] || kill "$HOLD_PID" 2>/dev/null || true
    bash "$PGC" stop "$DIR/pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash "$PGC" start "$DIR/pg" >/dev/null
# shellcheck disable=SC1091
source "$DIR/pg/cluster.env"
for side in old new; do
    data=$OLD_DATA
    [[ $side == old ]] || data=$NEW_DATA
    echo "max_connections = $((N + 100))" | runuser -u postgres -- tee -a "$data/postgresql.conf" >/dev/null
    bash "$PGC" stop-one "$DIR/pg" "$side" >/dev/null
    bash "$PGC" start-one "$DIR/pg" "$side" >/dev/null
done
psql -X -q -h 127.0.0.1 -p "$OLD_PORT" -U postgres -c "CREATE DATABASE bench" postgres
psql -X -q -h 127.0.0.1 -p "$NEW_PORT" -U postgres -c "CREATE DATABASE bench" postgres
pgbench -q -i -s 1 -h 127.0.0.1 -p "$OLD_PORT" -U postgres bench >/dev/null 2>&1
pgbench -q -i -s 1 -h 127.0.0.1 -p "$NEW_PORT" -U postgres bench >/dev/null 2>&1
cat >"$DIR/pgdual.ini" <<INI
[pgdual]
listen_addr = 127.0.0.1
listen_port = 0
workers = 2
auth_type = trust
admin_users = admin
state_file = $DIR/pgdual.state
journal_dir = $DIR/journal
log_level = warning
max_client_conn = $((N + 100))
[backends]
old = host=127.0.0.1 port=$OLD_PORT
new = host=127.0.0.1 port=$NEW_PORT
[cutover]
primary = old
read_new_percent = 0
compare_percent = 0
INI
"$BUILD/pgdual" -c "$DIR/pgdual.ini" >"$DIR/pgdual.log" 2>&1 &
PGDUAL_PID=$!
for _ in $(seq 100); do
    PORT=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9]*' "$DIR/pgdual.log" | sed 's/.*://' || true)
    [[ -z "$PORT" ]] || break
    sleep 0.1
done
[[ -n "$PORT" ]] || { cat "$DIR/pgdual.log"; exit 1; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$PGDUAL_PID/status"; }
psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -c "SELECT 1" bench >/dev/null # warm a session up
before=$(rss_kib)
# N idle sessions, each logged in (ReadyForQuery), held until the FIFO's writer closes.
mkfifo "$DIR/hold"
python3 - "$PORT" "$N" "$DIR/ready" <"$DIR/hold" <<'PY' &
import socket, struct, sys
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    body = struct.pack("!I", 196608) + b"user\0postgres\0database\0bench\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed during login: %r" % buf[-200:])
        buf += chunk
        if b"Z\0\0\0\x05" in buf:
            break
    socks.append(s)
open(ready, "w").write("%d\n" % len(socks))
sys.stdin.read()
PY
HOLD_PID=$!
exec {HOLDFD}>"$DIR/hold"
for _ in $(seq 6000); do
    [[ -s "$DIR/ready" ]] && break
    sleep 0.1
done
[[ -s "$DIR/ready" ]] || { echo "the idle sessions did not log in"; tail -5 "$DIR/pgdual.log"; exit 1; }
sleep 1 # let the last logins' transient buffers go
after=$(rss_kib)
echo "idle sessions: $N (both backends each), pgdual RSS $before KiB -> $after KiB:" \
    "$(((after - before) / N)) KiB per idle session"
exec {HOLDFD}>&-
wait "$HOLD_PID" || true
HOLD_PID=""
# mirror = off through the config file (SIGHUP: a dial changed in the file wins).
sed -i 's/^\[cutover\]$/[cutover]\nmirror = off/' "$DIR/pgdual.ini"
kill -HUP "$PGDUAL_PID"
sleep 1
for c in $CLIENTS; do
    pgbench -S -M simple -n -c "$c" -j 2 -T "$((SECS + c / 10))" -h 127.0.0.1 -p "$PORT" -U postgres bench \
        >"$DIR/pgbench-$c.out" 2>&1 || true
    tps=$(awk '/^tps/ { print $3 }' "$DIR/pgbench-$c.out")
    echo "relay (mirror = off) pgbench -S -M simple -c $c -j 2 -T $((SECS + c / 10)): tps ${tps:-none:" \
        "$(grep -m1 -i error "$DIR/pgbench-$c.out")}"
done
