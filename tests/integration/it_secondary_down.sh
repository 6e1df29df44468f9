#!/usr/bin/env bash
# tests/integration/it_secondary_down.sh: stopping the new cluster mid-run leaves clients working
# on old, moves secondary_state off in_sync, and hangs nothing; new is started again after.
# Runs alone (RUN_SERIAL): it stops a cluster the other tests share.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_secondary_down
it_createdb "$DB"
PGC="$(dirname "$0")/../harness/pgcluster.sh"
restart_new() { bash "$PGC" start-one "$CLUSTER_DIR" new >/dev/null 2>&1 || true; }
trap 'rc=$?; restart_new; (exit $rc); it_cleanup' EXIT
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
status_value() { psql_admin "SHOW STATUS" | awk -F'|' -v k="$1" '$1 == k { print $2 }'; }

psql_proxy "$DB" -c "CREATE TABLE w (id serial PRIMARY KEY, client int)"
assert_eq "in_sync" "$(status_value secondary_state)" "in_sync while both run"

# Four clients insert continuously; new is stopped (immediate) while they run.
printf 'INSERT INTO w (client) VALUES (:client_id);\n' >"$IT_TMP/ins.sql"
timeout 60 pgbench -n -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -c 4 -j 2 -T 6 -f "$IT_TMP/ins.sql" "$DB" \
    >"$IT_TMP/pgbench.out" 2>&1 &
load=$!
sleep 2
bash "$PGC" stop-one "$CLUSTER_DIR" new immediate
if wait "$load"; then it_pass "pgbench finished (exit 0) while new was stopped"; else it_failed "pgbench failed: $(tail -5 "$IT_TMP/pgbench.out")"; fi
assert_contains "$(cat "$IT_TMP/pgbench.out")" "number of failed transactions: 0" "no client saw an error"
assert_eq "lagging" "$(status_value secondary_state)" "secondary_state left in_sync"
acked=$(grep 'actually processed' "$IT_TMP/pgbench.out" | awk '{ print $NF }' | cut -d/ -f1)
assert_eq "$acked" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM w")" "every acknowledged insert is on old"

# New sessions work without new (its login fails, the session goes on with old).
assert_eq "INSERT 0 1" "$(timeout 20 psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -c "INSERT INTO w (client) VALUES (99)")" \
    "a new session writes with new down"
assert_eq "1" "$(timeout 20 psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -tA -c "SELECT count(*) FROM w WHERE client = 99")" \
    "and reads its write"
restart_new
it_proxy_stop
