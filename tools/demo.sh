#!/usr/bin/env bash
# tools/demo.sh: THE demo. Builds pgdual, starts two PostgreSQL 15 clusters ("old", "new") under
# .demo/, puts pgdual in front of them and prints how to connect and turn the cutover dials.
# Waits for Ctrl-C / SIGTERM, then stops everything and removes .demo/.
#   tools/demo.sh           interactive
#   tools/demo.sh --check   same setup, one query and one SHOW STATUS through pgdual, clean exit
# PGDUAL_BIN=path skips the build and runs that binary instead of build/pgdual.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DEMO=$REPO/.demo
CHECK=0
case "${1:-}" in
--check) CHECK=1 ;;
"") ;;
*)
    echo "usage: tools/demo.sh [--check]" >&2
    exit 2
    ;;
esac

PGDUAL_PID=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$PGDUAL_PID" ]] && kill -0 "$PGDUAL_PID" 2>/dev/null; then
        kill -TERM "$PGDUAL_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$PGDUAL_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$PGDUAL_PID" 2>/dev/null || true
        wait "$PGDUAL_PID" 2>/dev/null || true
    fi
    tests/harness/pgcluster.sh stop "$DEMO/pg" || true
    rm -rf "$DEMO"
    echo "demo: stopped and cleaned up"
    exit "$rc"
}

tools/install-deps.sh
if [[ -z "${PGDUAL_BIN:-}" ]]; then
    cmake -S . -B build >/dev/null
    cmake --build build -j 2 --target pgdual
    PGDUAL_BIN=$REPO/build/pgdual
fi

trap cleanup EXIT
trap 'exit 0' INT TERM
rm -rf "$DEMO"
mkdir -p "$DEMO"
tests/harness/pgcluster.sh start "$DEMO/pg"
# shellcheck disable=SC1091
source "$DEMO/pg/cluster.env"

for port in "$OLD_PORT" "$NEW_PORT"; do
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres <<'SQL'
CREATE TABLE demo_accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL);
INSERT INTO demo_accounts VALUES (1, 'alice', 100.00), (2, 'bob', 250.50), (3, 'carol', 75.25);
SQL
done

listen_port=6432
if [[ -n "$(ss -Htan '( sport = :6432 )' 2>/dev/null)" ]]; then
    listen_port=0
fi
# The admin console always asks for a password from auth_file (SCRAM-SHA-256), even under
# auth_type = trust: the demo's admin password is drawn here and shown below.
ADMIN_PW=$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')
printf '"admin" "%s"\n' "$ADMIN_PW" >"$DEMO/userlist.txt"
chmod 0600 "$DEMO/userlist.txt"
cat >"$DEMO/pgdual.ini" <<EOF2
; pgdual demo config (tools/demo.sh); relative paths are relative to this file.
[pgdual]
listen_addr = 127.0.0.1
listen_port = $listen_port
workers = 2
auth_type = trust
auth_file = userlist.txt
admin_users = admin
state_file = pgdual.state
journal_dir = journal
divergence_log = divergences.jsonl
metrics_port = 0
log_level = info
[backends]
old = host=127.0.0.1 port=$OLD_PORT
new = host=127.0.0.1 port=$NEW_PORT
[cutover]
primary = old
read_new_percent = 0
compare_percent = 100
mirror_order = lockstep
commit_wait = both
on_read_divergence = log
EOF2

"$PGDUAL_BIN" -c "$DEMO/pgdual.ini" 2>"$DEMO/pgdual.log" </dev/null &
PGDUAL_PID=$!
PORT=""
for _ in $(seq 200); do
    PORT=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9]*' "$DEMO/pgdual.log" | sed 's/.*://' || true)
    [[ -n "$PORT" ]] && break
    kill -0 "$PGDUAL_PID" 2>/dev/null || break
    sleep 0.05
done
if [[ -z "$PORT" ]]; then
    echo "demo: pgdual did not start; its log:" >&2
    cat "$DEMO/pgdual.log" >&2
    exit 1
fi

cat <<EOF2

pgdual is running on 127.0.0.1:$PORT in front of
  old: 127.0.0.1:$OLD_PORT    new: 127.0.0.1:$NEW_PORT    (table demo_accounts on both)

Connect the application (or psql) through pgdual:
  psql "host=127.0.0.1 port=$PORT dbname=postgres user=postgres"

Admin console (its password is in $DEMO/userlist.txt):
  PGPASSWORD=$ADMIN_PW psql -h 127.0.0.1 -p $PORT -U admin pgdual

Cutover dials to try in the console (the ladder: see README "Cutover runbook"):
  SET read_new_percent = 25;     -- share of reads new serves (falls back to old on trouble)
  SET compare_percent = 100;     -- share of reads also run on the other side and compared
  SET read_new_percent = 100;
  SET primary = new;             -- promote: new is the source of truth, writes mirror to old
                                 -- (refused unless SHOW STATUS says secondary_state in_sync;
                                 -- answers once new's sequences are raised to old's)
  ROLLBACK CUTOVER;              -- back to old in one step
  SHOW STATUS;  SHOW DIVERGENCES;

Compare the sides directly:
  psql -h 127.0.0.1 -p $OLD_PORT -U postgres -c 'TABLE demo_accounts'
  psql -h 127.0.0.1 -p $NEW_PORT -U postgres -c 'TABLE demo_accounts'
pgdual log: $DEMO/pgdual.log
EOF2

if ((CHECK)); then
    rows=$(psql -X -v ON_ERROR_STOP=1 -tA -h 127.0.0.1 -p "$PORT" -U postgres -d postgres \
        -c "SELECT count(*) || ':' || sum(balance) FROM demo_accounts")
    echo "demo --check: query through pgdual -> $rows"
    [[ "$rows" == "3:425.75" ]] || {
        echo "demo --check: unexpected result" >&2
        exit 1
    }
    PGPASSWORD=$ADMIN_PW psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U admin -d pgdual \
        -c "SHOW STATUS"
    echo "demo --check: OK"
    exit 0
fi

echo "Press Ctrl-C to stop the demo and remove .demo/."
while kill -0 "$PGDUAL_PID" 2>/dev/null; do
    wait "$PGDUAL_PID" || true
done
echo "demo: pgdual exited; log tail:" >&2
tail -n 20 "$DEMO/pgdual.log" >&2
exit 1
