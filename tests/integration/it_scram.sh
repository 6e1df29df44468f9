#!/usr/bin/env bash
# tests/integration/it_scram.sh: client authentication with auth_type = scram-sha-256 against an
# auth_file holding a plain password and a real SCRAM verifier taken from pg_authid.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "the test clusters trust everyone; SCRAM is pgdual's (PGDUAL_TEST_DIRECT=1)"

DB=it_scram
PLAIN_USER=it_scram_plain
PLAIN_PW='plain-Secret-1'
VERIF_USER=it_scram_verif
VERIF_PW='verif-Secret-2'
it_createdb "$DB"

# Roles exist on both clusters (backend login is trust); the verifier comes from old.
for q in psql_old psql_new; do
    "$q" postgres -c "SET client_min_messages = warning" \
        -c "DROP ROLE IF EXISTS $PLAIN_USER" -c "DROP ROLE IF EXISTS $VERIF_USER" \
        -c "SET password_encryption = 'scram-sha-256'" \
        -c "CREATE ROLE $PLAIN_USER LOGIN" \
        -c "CREATE ROLE $VERIF_USER LOGIN PASSWORD '$VERIF_PW'"
done
verifier=$(psql_old postgres -tA -c "SELECT rolpassword FROM pg_authid WHERE rolname = '$VERIF_USER'")
# shellcheck disable=SC2016 # a literal $ in the pattern
assert_match "$verifier" '^SCRAM-SHA-256\$4096:' "got a SCRAM verifier from pg_authid"

ADMIN_PW='admin-Secret-3'
printf '"%s" "%s"\n"%s" "%s"\n"admin" "%s"\n' "$PLAIN_USER" "$PLAIN_PW" "$VERIF_USER" "$verifier" \
    "$ADMIN_PW" >"$IT_TMP/userlist.txt"
it_proxy_start pgdual.auth_type=scram-sha-256 pgdual.auth_file=userlist.txt

# login USER PASSWORD: runs SELECT current_user through pgdual without ever prompting.
login() {
    PGPASSWORD=$2 psql -X -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U "$1" -d "$DB" \
        -tA -c "SELECT current_user"
}
login_nopw() {
    psql -X -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U "$1" -d "$DB" -tA -c "SELECT 1"
}

assert_eq "$PLAIN_USER" "$(login "$PLAIN_USER" "$PLAIN_PW" 2>&1)" "plain-password user logs in"
assert_eq "$VERIF_USER" "$(login "$VERIF_USER" "$VERIF_PW" 2>&1)" "SCRAM-verifier user logs in"

assert_fails "wrong password refused (plain)" -- login "$PLAIN_USER" "wrong"
assert_match "$IT_LAST_OUT" "authentication failed" "wrong password: authentication error"
assert_fails "wrong password refused (verifier)" -- login "$VERIF_USER" "$PLAIN_PW"
assert_match "$IT_LAST_OUT" "authentication failed" "wrong password (verifier): authentication error"
assert_fails "user missing from auth_file refused" -- login postgres "$PLAIN_PW"
assert_match "$IT_LAST_OUT" "FATAL" "unknown user: FATAL error"
assert_fails "no password refused" -- login_nopw "$PLAIN_USER"
assert_match "$IT_LAST_OUT" "password" "no password: asked for one"

# The admin console under SCRAM: the password login, then every kind of command, several per
# connection (the console once parsed the leftover SASL bytes as commands and closed).
admin() {
    PGPASSWORD=$1 psql -X -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U admin -d pgdual \
        -tA -F'|' "${@:2}"
}
out=$(admin "$ADMIN_PW" -c "SHOW STATUS" 2>&1)
assert_match "$out" "(^|$'\n')primary\|old" "admin: SHOW STATUS under scram-sha-256"
assert_eq "SET" "$(admin "$ADMIN_PW" -c "SET compare_percent = 40" 2>&1)" "admin: SET under scram"
assert_eq "compare_percent|40" "$(admin "$ADMIN_PW" -c "SHOW STATUS" 2>&1 | grep '^compare_percent|')" \
    "admin: the SET took effect"
out=$(admin "$ADMIN_PW" -c "SHOW CONFIG" -c "SHOW DIVERGENCES" -c "SHOW HELP" 2>&1)
assert_contains "$out" "auth_type|scram-sha-256" "admin: three commands on one connection"
assert_fails "admin: wrong password refused" -- admin "wrong" -c "SHOW STATUS"
assert_match "$IT_LAST_OUT" "authentication failed" "admin: wrong password is an auth error"
assert_fails "admin: no password refused" -- env "PGPASSFILE=$IT_TMP/none.pgpass" psql -X -w \
    -h 127.0.0.1 -p "$PROXY_PORT" -U admin -d pgdual -c "SHOW STATUS"
assert_contains "$IT_LAST_OUT" "password" "admin: no password: asked for one"

# Still working after the failures.
assert_eq "$VERIF_USER" "$(login "$VERIF_USER" "$VERIF_PW" 2>&1)" "login works after failures"
it_proxy_stop
