#!/usr/bin/env bash
# tests/integration/it_lifecycle.sh: a client killed mid-transaction leaves nothing behind; a
# backend terminated under a session fails that client only.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

DB=it_lifecycle
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
assert_ok "create table" -- psql_proxy "$DB" -c "CREATE TABLE lc (v text)"

# backends_with PORT TEXT: other backends of DB on PORT whose last query contains TEXT.
backends_with() {
    psql -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -tA -c \
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB'
            AND pid <> pg_backend_pid() AND (query LIKE '%$2%' OR application_name = '$2')"
}
none_left() { [[ "$(backends_with "$1" "$2")" == 0 ]]; }
idle_in_tx() {
    [[ "$(psql_old postgres -tA -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB'
        AND state = 'idle in transaction' AND query LIKE '%$1%'")" == 1 ]]
}

# --- client killed with SIGKILL inside a transaction ------------------------------------------
setsid env PGAPPNAME=killed-client psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" \
    -U postgres -d "$DB" >"$IT_TMP/killed.out" 2>&1 <<'SQL' &
BEGIN;
INSERT INTO lc VALUES ('killed-client');
\! sleep 60
COMMIT;
SQL
killed=$!
if it_wait_for 10 idle_in_tx killed-client; then
    it_pass "killed-client is idle in transaction on old after its INSERT"
else
    it_failed "killed-client never became idle in transaction: $(cat "$IT_TMP/killed.out")"
fi
assert_eq "0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM lc")" "uncommitted row invisible"
kill -KILL -- "-$killed" 2>/dev/null || kill -KILL "$killed"
{ wait "$killed"; } 2>/dev/null || true
if it_wait_for 10 none_left "$OLD_PORT" killed-client; then
    it_pass "no backend of the killed client left on old"
else
    it_failed "backend of the killed client still on old"
fi
if it_via_proxy; then
    if it_wait_for 10 none_left "$NEW_PORT" killed-client; then
        it_pass "no backend of the killed client left on new"
    else
        it_failed "backend of the killed client still on new"
    fi
    if it_mirrors; then
        assert_eq "0" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM lc")" "no row on new"
    fi
fi
assert_eq "0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM lc")" "no row on old"

# --- pg_terminate_backend under one session, another session carries on -----------------------
# Each session is a psql reading commands from a FIFO we hold open.
start_session() { # NAME FD
    mkfifo "$IT_TMP/$1.in"
    psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres \
        -d "dbname=$DB application_name=it_$1" -tA -f "$IT_TMP/$1.in" >"$IT_TMP/$1.out" 2>&1 &
}
out_has() { grep -q -- "$2" "$IT_TMP/$1.out"; }

start_session victim
victim_pid=$!
exec 7>"$IT_TMP/victim.in"
start_session bystander
bystander_pid=$!
exec 8>"$IT_TMP/bystander.in"

echo "INSERT INTO lc VALUES ('victim-marker') RETURNING 'victim-' || 'ready';" >&7
echo "INSERT INTO lc VALUES ('bystander-marker') RETURNING 'bystander-' || 'ready';" >&8
it_wait_for 10 out_has victim victim-ready || it_fail "victim session did not start"
it_wait_for 10 out_has bystander bystander-ready || it_fail "bystander session did not start"

terminated=$(psql_old postgres -tA -c "SELECT count(pg_terminate_backend(pid))
    FROM pg_stat_activity WHERE datname = '$DB' AND application_name = 'it_victim'
    AND pid <> pg_backend_pid()")
assert_eq "1" "$terminated" "terminated the victim's backend on old"
sleep 0.5
echo "SELECT 'victim-' || 'after';" >&7
exec 7>&-
rc=0
wait "$victim_pid" || rc=$?
victim_out=$(cat "$IT_TMP/victim.out")
assert_eq "1" "$((rc != 0))" "victim psql exits non-zero (status $rc)"
assert_match "$victim_out" "FATAL|terminat|server closed the connection" \
    "victim sees a FATAL / terminated message"
assert_not_contains "$victim_out" "victim-after" "victim ran nothing after termination"

echo "SELECT 'bystander-' || 'after';" >&8
echo "INSERT INTO lc VALUES ('bystander-2');" >&8
exec 8>&-
rc=0
wait "$bystander_pid" || rc=$?
assert_eq "0" "$rc" "bystander psql exits 0"
assert_contains "$(cat "$IT_TMP/bystander.out")" "bystander-after" "bystander keeps working"
assert_eq "bystander-2,bystander-marker,victim-marker" \
    "$(psql_old "$DB" -tA -c "SELECT string_agg(v, ',' ORDER BY v) FROM lc")" "rows on old"
if it_via_proxy; then
    if it_wait_for 10 none_left "$NEW_PORT" it_victim; then
        it_pass "victim's backend on new closed too"
    else
        it_failed "victim's backend on new still there"
    fi
fi
assert_eq "1" "$(psql_proxy "$DB" -tA -c "SELECT count(*) FROM lc WHERE v = 'bystander-2'")" \
    "new client through pgdual works"
it_proxy_stop
