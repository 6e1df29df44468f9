#!/usr/bin/env bash
# tests/integration/it_metrics_conn.sh: the metrics endpoint's own address and its bound on idle
# connections (issue 14 item 4): metrics_addr puts it on 127.0.0.2 while clients stay on
# 127.0.0.1; 40 idle TCP connections (connect, send nothing) do not keep a scrape out
# (metrics_max_conn: the longest idle one is closed for the new one); metrics_idle_timeout_ms
# closes an idle connection by itself.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "the metrics endpoint exists only in pgdual (PGDUAL_TEST_DIRECT=1)"
command -v python3 >/dev/null || it_fail "python3 is needed for the idle connections"

# idle_then_scrape HOST PORT N: opens N idle connections and keeps them, then scrapes /metrics
# on a new one (5 s timeout). Prints "scrape=<status> closed=<idle ones the server closed>".
idle_then_scrape() {
    python3 -I -S - "$@" <<'PY'
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
idle = []
for _ in range(n):
    try:
        idle.append(socket.create_connection((host, port), timeout=5))
    except OSError:
        pass
status = "none"
try:
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\r\n", 1)[0].decode()
    status = line.split(" ")[1] if line.startswith("HTTP/") else "bad"
    if b"pgdual_" not in data:
        status += "-nobody"
except OSError as e:
    status = "error-" + type(e).__name__
closed = 0
for c in idle:
    c.settimeout(0.01)
    try:
        if c.recv(1) == b"":
            closed += 1
    except socket.timeout:
        pass
    except OSError:
        closed += 1
print(f"scrape={status} closed={closed}")
PY
}

# closed_within HOST PORT SECONDS: one idle connection; prints how long the server took to close
# it ("never" within SECONDS).
closed_within() {
    python3 -I -S - "$@" <<'PY'
import socket, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = socket.create_connection((host, port), timeout=limit)
try:
    print("closed" if c.recv(1) == b"" else "data")
except socket.timeout:
    print("never")
except OSError:
    print("closed")
PY
}

PORT=$(it_free_port)
it_proxy_start "metrics_port=$PORT" metrics_addr=127.0.0.2 metrics_max_conn=4 \
    metrics_idle_timeout_ms=60000
assert_contains "$(cat "$PROXY_LOG")" "metrics on http://127.0.0.2:$PORT/metrics" \
    "the endpoint says it serves on metrics_addr"
assert_eq "1" "$(psql_proxy postgres -tA -c 'SELECT 1')" "clients still connect on listen_addr"
if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), timeout=2)" \
    2>/dev/null; then
    it_failed "the metrics port answers on 127.0.0.1 though metrics_addr = 127.0.0.2"
else
    it_pass "nothing serves metrics on listen_addr"
fi
out=$(idle_then_scrape 127.0.0.2 "$PORT" 40)
assert_contains "$out" "scrape=200 " "a scrape is answered while 40 idle connections were opened"
closed=${out##*closed=}
if ((closed >= 40 - 4)); then
    it_pass "the idle connections over metrics_max_conn were closed ($closed of 40)"
else
    it_failed "only $closed of 40 idle connections were closed (metrics_max_conn = 4)"
fi
assert_contains "$(idle_then_scrape 127.0.0.2 "$PORT" 0)" "scrape=200 " "the endpoint still serves"
it_proxy_stop

it_proxy_start "metrics_port=$PORT" metrics_addr=127.0.0.2 metrics_idle_timeout_ms=1000
assert_eq "closed" "$(closed_within 127.0.0.2 "$PORT" 15)" \
    "metrics_idle_timeout_ms closes an idle connection"
it_proxy_stop
