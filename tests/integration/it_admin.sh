#!/usr/bin/env bash
# tests/integration/it_admin.sh: the admin console (DESIGN §11): SHOW STATUS keys, SET of dials,
# rejected SETs, ROLLBACK CUTOVER, non-admin refusal, SHOW CONFIG, SHOW DIVERGENCES (empty), the
# mirror = off guard, dials persisted in state_file (over SIGKILL, refused writes, corrupt files
# at start).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "the admin console exists only in pgdual (PGDUAL_TEST_DIRECT=1)"

it_proxy_start cutover.read_new_percent=0 cutover.compare_percent=100

# status_value KEY: the value column of SHOW STATUS for KEY.
status_value() {
    psql_admin "SHOW STATUS" | awk -F'|' -v k="$1" '$1 == k { print $2 }'
}

status=$(psql_admin "SHOW STATUS")
for key in primary read_new_percent compare_percent mirror_order commit_wait secondary_state \
    sessions_active statements_total reads_served_old reads_served_new writes_mirrored \
    fallbacks_total shadow_compares_total divergences_total nondeterministic_writes_total \
    journal_pending; do
    assert_match "$status" "(^|"$'\n'")$key\\|[^|"$'\n'"]+(\$|"$'\n'")" "SHOW STATUS has key $key"
done
assert_eq "old" "$(status_value primary)" "initial primary"
assert_eq "0" "$(status_value read_new_percent)" "initial read_new_percent"
assert_eq "100" "$(status_value compare_percent)" "initial compare_percent"
if it_mirrors; then
    assert_eq "in_sync" "$(status_value secondary_state)" "secondary in_sync with both backends up"
fi

assert_ok "SET read_new_percent = 30" -- psql_admin "SET read_new_percent = 30"
assert_eq "30" "$(status_value read_new_percent)" "read_new_percent after SET"
assert_ok "SET compare_percent = 10" -- psql_admin "SET compare_percent = 10"
assert_eq "10" "$(status_value compare_percent)" "compare_percent after SET"

for bad in "SET no_such_dial = 1" "SET read_new_percent = 101" "SET read_new_percent = -1" \
    "SET primary = banana" "SET compare_percent = abc" "NO SUCH COMMAND"; do
    assert_fails "'$bad' rejected" -- psql_admin "$bad"
    assert_contains "$IT_LAST_OUT" "ERROR" "'$bad' answers an error message"
done
assert_eq "30" "$(status_value read_new_percent)" "read_new_percent unchanged by rejected SETs"
assert_eq "old" "$(status_value primary)" "primary unchanged by rejected SETs"

assert_ok "SET primary = new" -- psql_admin "SET primary = new"
assert_eq "new" "$(status_value primary)" "primary after SET primary = new"
assert_ok "ROLLBACK CUTOVER" -- psql_admin "ROLLBACK CUTOVER"
assert_eq "old|0" "$(status_value primary)|$(status_value read_new_percent)" \
    "ROLLBACK CUTOVER sets primary = old and read_new_percent = 0"

assert_fails "non-admin user refused on the admin database" -- \
    psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d pgdual -tA \
    -c "SHOW STATUS"
assert_match "$IT_LAST_OUT" "FATAL|ERROR" "non-admin refusal carries an error message"
assert_not_contains "$IT_LAST_OUT" "read_new_percent" "non-admin sees no status"

config=$(psql_admin "SHOW CONFIG")
assert_match "$config" "(^|"$'\n'")listen_port\\|" "SHOW CONFIG lists listen_port"
assert_match "$config" "(^|"$'\n'")admin_users\\|admin" "SHOW CONFIG lists admin_users"

# SHOW DIVERGENCES: its columns, empty on a fresh pgdual (it_dualwrite.sh fills it), in SHOW HELP.
divs=$(psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U admin -d pgdual -A -c "SHOW DIVERGENCES")
assert_eq "fingerprint|kind|count|first_seen|last_seen|statement"$'\n'"(0 rows)" "$divs" \
    "SHOW DIVERGENCES: six columns, no rows before any divergence"
assert_contains "$(psql_admin "SHOW HELP")" "SHOW DIVERGENCES:" "SHOW HELP lists SHOW DIVERGENCES"

# --- SET mirror = off is guarded while primary = old ------------------------------------------
assert_fails "SET mirror = off refused while primary = old" -- psql_admin "SET mirror = off"
assert_contains "$IT_LAST_OUT" "FORCE" "the refusal names the FORCE syntax"
assert_eq "on" "$(status_value mirror)" "mirror still on after the refused SET"
assert_fails "'SET mirror = off FORCEFULLY' is a syntax error" -- \
    psql_admin "SET mirror = off FORCEFULLY"
assert_eq "on" "$(status_value mirror)" "mirror still on after the bad syntax"
assert_ok "SET mirror = off FORCE accepted" -- psql_admin "SET mirror = off FORCE"
assert_eq "off" "$(status_value mirror)" "mirror off after FORCE"
assert_ok "SET mirror = on" -- psql_admin "SET mirror = on"
assert_ok "SET primary = new" -- psql_admin "SET primary = new"
assert_ok "SET mirror = off without FORCE once primary = new (step 3)" -- \
    psql_admin "SET mirror = off"
assert_eq "new|off" "$(status_value primary)|$(status_value mirror)" "step 3 dials"
assert_ok "ROLLBACK CUTOVER" -- psql_admin "ROLLBACK CUTOVER"
assert_ok "SET mirror = on" -- psql_admin "SET mirror = on"

# --- dials persist in state_file ($IT_TMP/pgdual.state, next to the ini) -----------------------
STATE="$IT_TMP/pgdual.state"
assert_ok "SET read_new_percent = 25" -- psql_admin "SET read_new_percent = 25"
assert_ok "SET mirror_order = parallel" -- psql_admin "SET mirror_order = parallel"
assert_contains "$(cat "$STATE")" "read_new_percent = 25" "state file holds the SET before it answered"
assert_match "$(tail -n 1 "$STATE")" '^checksum = [0-9a-f]{16}$' "state file ends with its checksum"
assert_eq "0" "$(find "$IT_TMP" -name 'pgdual.state.tmp' | wc -l)" "no temp file left behind"

# A restart with SIGKILL (no orderly stop) and the same config: the dials are the changed ones.
kill -KILL "$PROXY_PID"
{ wait "$PROXY_PID"; } 2>/dev/null || true
PROXY_PID=""
it_proxy_start cutover.read_new_percent=0 cutover.compare_percent=100
assert_eq "25" "$(status_value read_new_percent)" "read_new_percent persisted over SIGKILL"
assert_eq "parallel" "$(status_value mirror_order)" "mirror_order persisted over SIGKILL"
assert_eq "old" "$(status_value primary)" "primary as persisted"
assert_contains "$(cat "$PROXY_LOG")" "dials taken from the state file" "start says where dials came from"

# ROLLBACK CUTOVER is persisted too: a restart never undoes a rollback.
assert_ok "SET primary = new" -- psql_admin "SET primary = new"
assert_ok "ROLLBACK CUTOVER" -- psql_admin "ROLLBACK CUTOVER"
it_proxy_stop
it_proxy_start cutover.primary=new cutover.read_new_percent=50
assert_eq "old|0" "$(status_value primary)|$(status_value read_new_percent)" \
    "the rollback survives a restart whose config file says primary = new"

# A state file that cannot be written: the SET is an error and changes nothing.
chmod 0555 "$IT_TMP"
if [[ -w "$IT_TMP" ]]; then
    it_log "running as root: a read-only directory does not stop writes; skipping that check"
else
    assert_fails "SET refused when the state file cannot be written" -- \
        psql_admin "SET read_new_percent = 75"
    assert_contains "$IT_LAST_OUT" "state file" "the error names the state file"
    assert_eq "0" "$(status_value read_new_percent)" "the refused SET changed nothing"
fi
chmod 0755 "$IT_TMP"
# Replace the state directory's file with a directory: rename over it fails even for root.
mv "$STATE" "$STATE.saved"
mkdir "$STATE"
assert_fails "SET refused when the state file cannot be replaced" -- \
    psql_admin "SET read_new_percent = 75"
assert_contains "$IT_LAST_OUT" "state file" "the error names the state file"
assert_eq "0" "$(status_value read_new_percent)" "the refused SET changed nothing"
rmdir "$STATE"
mv "$STATE.saved" "$STATE"
it_proxy_stop

# A truncated state file stops pgdual at start with a one-line reason, exit status non-zero.
good_state=$(cat "$STATE")
head -c -20 <<<"$good_state" >"$STATE"
rc=0
"$PGDUAL_BIN" -c "$PROXY_INI" >"$IT_TMP/start.out" 2>&1 </dev/null || rc=$?
assert_eq "1" "$rc" "start with a truncated state file exits 1"
assert_contains "$(cat "$IT_TMP/start.out")" "state file $STATE is corrupt: truncated" \
    "the message names the file and the truncation"
assert_not_contains "$(cat "$IT_TMP/start.out")" "listening on" "nothing listened"
# A bad checksum (a hand edit) is refused the same way.
printf '%s\n' "${good_state/read_new_percent = 0/read_new_percent = 90}" >"$STATE"
rc=0
"$PGDUAL_BIN" -c "$PROXY_INI" >"$IT_TMP/start.out" 2>&1 </dev/null || rc=$?
assert_eq "1" "$rc" "start with an edited state file exits 1"
assert_contains "$(cat "$IT_TMP/start.out")" "bad checksum" "the message says bad checksum"
# Without the state file the config file's dials apply.
rm -f "$STATE"
it_proxy_start cutover.read_new_percent=7
assert_eq "7" "$(status_value read_new_percent)" "no state file: dials from the config file"

# The proxy still serves ordinary clients next to the console.
assert_eq "1" "$(psql_proxy postgres -tA -c 'SELECT 1')" "query through pgdual"
it_proxy_stop
