#!/usr/bin/env bash
# tests/integration/it_admin.sh: the admin console (DESIGN §11): SHOW STATUS keys, SET of dials,
# rejected SETs, ROLLBACK CUTOVER, non-admin refusal, SHOW CONFIG, dials persisted over a restart.
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

# Dials survive a restart (persisted state_file in this test's directory): the cutover-control
# issue builds state_file; switch this on with PGDUAL_PERSISTS=1 there.
if [[ "${PGDUAL_PERSISTS:-0}" == 1 ]]; then
    assert_ok "SET read_new_percent = 25" -- psql_admin "SET read_new_percent = 25"
    it_proxy_stop
    it_proxy_start cutover.read_new_percent=0 cutover.compare_percent=100
    assert_eq "25" "$(status_value read_new_percent)" "read_new_percent persisted over a restart"
fi

# The proxy still serves ordinary clients next to the console.
assert_eq "1" "$(psql_proxy postgres -tA -c 'SELECT 1')" "query through pgdual"
it_proxy_stop
