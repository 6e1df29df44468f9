#!/usr/bin/env bash
# tests/integration/it_reload.sh: SIGHUP and the admin RELOAD re-read the config file: changed
# dials (file changes win, runtime SETs of unchanged dials stay, both persisted), backend
# connection strings and the auth file for new sessions, log_level; a broken file is refused
# (old config stays, error logged, pgdual keeps serving); restart-only keys only warn.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "reload is pgdual's (PGDUAL_TEST_DIRECT=1)"

DB=it_reload
it_createdb "$DB"
it_proxy_start cutover.read_new_percent=0 cutover.compare_percent=100

status_value() {
    psql_admin "SHOW STATUS" | awk -F'|' -v k="$1" '$1 == k { print $2 }'
}
status_is() { [[ "$(status_value "$1")" == "$2" ]]; }
log_count() { grep -c -- "$1" "$PROXY_LOG" || true; }
# rewrite ARGS...: the test's ini with these overrides (same defaults as it_proxy_start).
rewrite() { it_write_ini "$PROXY_INI" "$@"; }
# hup_and_wait N: SIGHUP, then wait until the log has N "reload" outcome lines (applied or not).
reloads_done() { [[ "$(grep -cE 'reloaded |reload refused' "$PROXY_LOG")" -ge "$1" ]]; }
hup() {
    local before
    before=$(grep -cE 'reloaded |reload refused' "$PROXY_LOG" || true)
    kill -HUP "$PROXY_PID"
    it_wait_for 10 reloads_done $((before + 1)) || it_fail "no reload outcome logged after SIGHUP"
}

# --- SIGHUP applies a dial changed in the file ------------------------------------------------
rewrite cutover.read_new_percent=40 cutover.compare_percent=100
hup
assert_eq "40" "$(status_value read_new_percent)" "SIGHUP: read_new_percent from the file"
assert_contains "$(cat "$IT_TMP/pgdual.state")" "read_new_percent = 40" "reloaded dial persisted"
assert_contains "$(cat "$PROXY_LOG")" "dials changed in the config file applied: read_new_percent = 40" \
    "the reload logs the dial it applied"

# --- precedence: a runtime SET of a dial the file did not change survives the reload -----------
assert_ok "SET compare_percent = 10" -- psql_admin "SET compare_percent = 10"
rewrite cutover.read_new_percent=45 cutover.compare_percent=100
hup
assert_eq "45|10" "$(status_value read_new_percent)|$(status_value compare_percent)" \
    "file change wins (read_new_percent), runtime value kept (compare_percent unchanged in file)"
# ...and a dial changed in the file overrides a runtime SET of the same dial.
assert_ok "SET read_new_percent = 5" -- psql_admin "SET read_new_percent = 5"
rewrite cutover.read_new_percent=45 cutover.compare_percent=20
hup
assert_eq "5|20" "$(status_value read_new_percent)|$(status_value compare_percent)" \
    "compare_percent changed in the file wins over its runtime SET; read_new_percent keeps SET"

# --- a broken file is refused: old config stays, error logged, pgdual keeps serving -----------
refused_before=$(log_count "reload refused")
cp "$PROXY_INI" "$IT_TMP/good.ini"
{
    cat "$IT_TMP/good.ini"
    echo "no_such_key = 1"
} >"$PROXY_INI"
sed -i 's/^read_new_percent = 45$/read_new_percent = 99/' "$PROXY_INI"
hup
assert_eq "$((refused_before + 1))" "$(log_count "reload refused")" "broken file: reload refused"
assert_contains "$(grep 'reload refused' "$PROXY_LOG" | tail -n 1)" 'unknown key "no_such_key"' \
    "the logged error names the bad key"
assert_eq "5|20" "$(status_value read_new_percent)|$(status_value compare_percent)" \
    "broken file: dials unchanged (its read_new_percent = 99 not applied)"
assert_eq "1" "$(psql_proxy "$DB" -tA -c 'SELECT 1')" "pgdual keeps serving after a refused reload"

cp "$IT_TMP/good.ini" "$PROXY_INI"
sed -i 's/^read_new_percent = 45$/read_new_percent = 250/' "$PROXY_INI"
hup
assert_eq "5" "$(status_value read_new_percent)" "out-of-range value: reload refused, dial kept"

# --- admin RELOAD: an error for a broken file, applies a good one ------------------------------
assert_fails "RELOAD answers an error for a broken file" -- psql_admin "RELOAD"
assert_contains "$IT_LAST_OUT" "read_new_percent" "RELOAD's error names the bad key"
rewrite cutover.read_new_percent=60 cutover.compare_percent=20
assert_ok "RELOAD of a good file" -- psql_admin "RELOAD"
assert_eq "60" "$(status_value read_new_percent)" "RELOAD applied read_new_percent"

# --- restart-only keys warn and keep their running value ---------------------------------------
rewrite cutover.read_new_percent=60 cutover.compare_percent=20 pgdual.workers=3
assert_ok "RELOAD with a changed restart-only key" -- psql_admin "RELOAD"
assert_contains "$(cat "$PROXY_LOG")" "workers changed to \"3\" but needs a restart" \
    "restart-only key change logged as a warning"
assert_eq "2" "$(status_value workers)" "workers unchanged until a restart"

# --- log_level applies at once ------------------------------------------------------------------
assert_eq "0" "$(log_count ' DEBUG ')" "no debug lines at log_level = info"
rewrite cutover.read_new_percent=60 cutover.compare_percent=20 pgdual.log_level=debug
hup
psql_proxy "$DB" -tA -c 'SELECT 1' >/dev/null
assert_match "$(log_count ' DEBUG ')" '^[1-9][0-9]*$' "debug lines after reloading log_level = debug"

# --- backend connection strings apply to new sessions --------------------------------------------
# An existing session keeps its backends; a new one uses the reloaded string.
mkfifo "$IT_TMP/held.in"
psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -tA \
    -f "$IT_TMP/held.in" >"$IT_TMP/held.out" 2>&1 &
held_pid=$!
exec 7>"$IT_TMP/held.in"
echo "SELECT 'held-' || 'before';" >&7
held_has() { grep -q -- "$1" "$IT_TMP/held.out"; }
it_wait_for 10 held_has held-before || it_fail "held session did not start"
rewrite cutover.read_new_percent=60 cutover.compare_percent=20 "backends.old=host=127.0.0.1 port=1"
hup
assert_fails "a new session uses the reloaded (unreachable) old conninfo" -- \
    psql_proxy "$DB" -tA -c 'SELECT 1'
assert_contains "$IT_LAST_OUT" "cannot connect to the backend: old: connection to server at \"127.0.0.1\", port 1" \
    "new session: cannot connect to old at the reloaded port"
echo "SELECT 'held-' || 'after';" >&7
exec 7>&-
rc=0
{ wait "$held_pid"; } 2>/dev/null || rc=$?
assert_eq "0" "$rc" "the session opened before the reload carries on"
assert_contains "$(cat "$IT_TMP/held.out")" "held-after" "the held session ran its next query"
rewrite cutover.read_new_percent=60 cutover.compare_percent=20
hup
assert_eq "1" "$(psql_proxy "$DB" -tA -c 'SELECT 1')" "old conninfo restored by reload"

# --- the auth file (and auth_type) apply to new logins -------------------------------------------
printf '"postgres" "first-Secret"\n%s\n' "$IT_ADMIN_LINE" >"$IT_TMP/userlist.txt"
rewrite cutover.read_new_percent=60 cutover.compare_percent=20 pgdual.auth_type=scram-sha-256 \
    pgdual.auth_file=userlist.txt
hup
login() {
    PGPASSWORD=$1 psql -X -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres \
        -d "$DB" -tA -c "SELECT 'in'"
}
assert_eq "in" "$(login first-Secret 2>&1)" "SCRAM login with the reloaded auth file"
printf '"postgres" "second-Secret"\n%s\n' "$IT_ADMIN_LINE" >"$IT_TMP/userlist.txt"
hup
assert_eq "in" "$(login second-Secret 2>&1)" "the changed auth file is re-read on reload"
assert_fails "the old password is refused after the reload" -- login first-Secret
assert_contains "$IT_LAST_OUT" "authentication failed" "old password: authentication failed"
# A broken auth file refuses the whole reload: the current table stays.
printf '"postgres" "md5%032d"\n' 0 >"$IT_TMP/userlist.txt"
hup
assert_contains "$(grep 'reload refused' "$PROXY_LOG" | tail -n 1)" "auth_file" \
    "a bad auth file refuses the reload"
assert_eq "in" "$(login second-Secret 2>&1)" "the previous auth table still serves"
it_proxy_stop
