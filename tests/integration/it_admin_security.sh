#!/usr/bin/env bash
# tests/integration/it_admin_security.sh: the admin console's protections (issue 14 item 2) and
# secrets kept out of sight (item 3): under auth_type = trust the console still asks for the
# password in auth_file (none, a wrong one, a user without an entry: refused), admin_auth_trust
# = on lets it in without one; stats_users run SHOW only (42501 otherwise); commands match whole
# words (42601); admin_reserved_conn lets an admin in while max_client_conn ordinary clients hold
# every slot; a primary switch needs FORCE while the secondary is not in_sync; a backend
# password is masked in SHOW CONFIG and in the log of a RELOAD that changed it; a user name
# with a newline reaches the log escaped.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "the admin console exists only in pgdual (PGDUAL_TEST_DIRECT=1)"

DB=it_admin_security
it_createdb "$DB"
# The stats user's auth_file line is a SCRAM verifier (taken from old's pg_authid), the admin's
# a plain password: the console takes both, as client logins do.
STATS_PW='stats-Secret-9'
psql_old postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS it_admsec_verif" \
    -c "SET password_encryption = 'scram-sha-256'" \
    -c "CREATE ROLE it_admsec_verif PASSWORD '$STATS_PW'"
verifier=$(psql_old postgres -tA -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'it_admsec_verif'")
psql_old postgres -c "DROP ROLE it_admsec_verif"
printf '%s\n"watcher" "%s"\n' "$IT_ADMIN_LINE" "$verifier" >"$IT_USERLIST"
SECRET1='Sup3r-Secret-one'
SECRET2='0ther Secret two'

# console USER PASSWORD SQL: one command on the console, never prompting; verbose errors (the
# SQLSTATE shows). An empty PASSWORD sends none.
console() {
    local -a env=("PGPASSFILE=$IT_TMP/none.pgpass") # no such file: no password from it
    [[ -z "$2" ]] || env+=("PGPASSWORD=$2")
    env "${env[@]}" psql -X -w -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h 127.0.0.1 \
        -p "$PROXY_PORT" -U "$1" -d pgdual -tA -c "$3"
}

# startup_code USER DB: sends a StartupMessage over a raw socket and prints what the first answer
# is: the SQLSTATE of an ErrorResponse, or "auth-N" for an Authentication request of code N.
startup_code() {
    python3 -I -S - "$PROXY_PORT" "$1" "$2" <<'PY'
import socket, struct, sys
port, user, db = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(struct.pack("!I", len(body) + 4) + body)
buf = b""
while len(buf) < 5 or len(buf) < 1 + struct.unpack("!I", buf[1:5])[0]:
    chunk = s.recv(4096)
    if not chunk:
        break
    buf += chunk
if buf[:1] == b"E":
    fields = buf[5:].split(b"\0")
    print(next(f[1:].decode() for f in fields if f[:1] == b"C"))
elif buf[:1] == b"R":
    print("auth-%d" % struct.unpack("!I", buf[5:9])[0])
else:
    print("other-%r" % buf[:1])
PY
}

it_proxy_start pgdual.admin_users=admin,ops pgdual.stats_users=watcher \
    "backends.old=host=127.0.0.1 port=$OLD_PORT password=$SECRET1"

# --- a password, whatever auth_type says --------------------------------------------------------
assert_fails "trust: the console refuses a login without a password" -- console admin "" "SHOW STATUS"
assert_contains "$IT_LAST_OUT" "password" "no password: asked for one"
assert_eq "auth-10" "$(startup_code admin pgdual)" "trust: the console answers AuthenticationSASL"
assert_fails "trust: the console refuses a wrong password" -- console admin wrong "SHOW STATUS"
assert_contains "$IT_LAST_OUT" 'password authentication failed for user "admin"' \
    "wrong password: the message"
assert_contains "$(console admin "$IT_ADMIN_PW" "SHOW STATUS" 2>&1)" "primary|old" \
    "the right password opens the console"
assert_fails "an admin user without an auth_file entry cannot log in" -- \
    console ops whatever "SHOW STATUS"
assert_eq "28P01" "$(startup_code ops pgdual)" "no entry: 28P01"
assert_eq "28000" "$(startup_code somebody pgdual)" "a user in neither list: 28000"
assert_contains "$IT_LAST_OUT" "has none there" "no entry: the message says why"
assert_eq "1" "$(psql_proxy "$DB" -tA -c 'SELECT 1')" "ordinary clients still log in under trust"

# --- stats_users: SHOW only ---------------------------------------------------------------------
assert_contains "$(console watcher "$STATS_PW" "SHOW STATUS" 2>&1)" "primary|old" \
    "stats user (SCRAM verifier in auth_file): SHOW STATUS"
assert_contains "$(console watcher "$STATS_PW" "SHOW CONFIG" 2>&1)" "stats_users|watcher" \
    "stats user: SHOW CONFIG"
for cmd in "SET compare_percent = 5" "PAUSE" "RELOAD" "ROLLBACK CUTOVER"; do
    assert_fails "stats user: $cmd refused" -- console watcher "$STATS_PW" "$cmd"
    assert_contains "$IT_LAST_OUT" "42501" "stats user: $cmd is 42501"
done
assert_eq "100" "$(it_status compare_percent)" "the stats user's SET changed nothing"
assert_eq "off" "$(it_status paused)" "the stats user's PAUSE changed nothing"
assert_fails "stats user: a wrong password is refused" -- console watcher wrong "SHOW STATUS"

# --- whole words --------------------------------------------------------------------------------
for cmd in "RELOAD x" "PAUSE now" "SHOW STATUS extra" "RESUME please" "SEED all"; do
    assert_fails "\"$cmd\" is an error" -- console admin "$IT_ADMIN_PW" "$cmd"
    assert_contains "$IT_LAST_OUT" "42601" "\"$cmd\": 42601"
done
assert_contains "$IT_LAST_OUT" 'syntax error at "all"' "the error names the extra word"
assert_eq "off" "$(it_status paused)" "PAUSE now did not pause"
assert_fails "RELOADX is unknown" -- console admin "$IT_ADMIN_PW" "RELOADX"
assert_contains "$IT_LAST_OUT" "unknown admin command" "RELOADX: unknown"

# --- a primary switch needs FORCE while the secondary is not in_sync ---------------------------
assert_ok "SEED (secondary_state = seeding)" -- psql_admin "SEED"
assert_fails "SET primary = new refused while seeding" -- console admin "$IT_ADMIN_PW" \
    "SET primary = new"
assert_contains "$IT_LAST_OUT" "55000" "the refused switch: 55000"
assert_eq "old" "$(it_status primary)" "primary stays old"

# --- secrets masked: SHOW CONFIG, and the log of a RELOAD that changed the password -------------
cfg=$(psql_admin "SHOW CONFIG")
assert_contains "$cfg" "old|host=127.0.0.1 port=$OLD_PORT password=********|" \
    "SHOW CONFIG masks the backend password"
assert_not_contains "$cfg" "$SECRET1" "SHOW CONFIG shows no password"
it_write_ini "$PROXY_INI" pgdual.admin_users=admin,ops pgdual.stats_users=watcher \
    "backends.old=host=127.0.0.1 port=$OLD_PORT password='$SECRET2'"
assert_ok "RELOAD with a changed backend password" -- psql_admin "RELOAD"
it_wait_for 5 grep -q "reload: \[backends\] old = " "$PROXY_LOG" || it_failed "no reload line"
assert_contains "$(grep 'reload: \[backends\] old = ' "$PROXY_LOG")" \
    "password=********" "the reload's log line masks the password"
assert_not_contains "$(cat "$PROXY_LOG")" "Sup3r" "the log holds no old password"
assert_not_contains "$(cat "$PROXY_LOG")" "0ther" "the log holds no new password"
assert_not_contains "$(psql_admin "SHOW CONFIG")" "0ther" "SHOW CONFIG after the reload: masked"
assert_eq "1" "$(psql_proxy "$DB" -tA -c 'SELECT 1')" "the reloaded conninfo serves"

# --- a user name with a newline reaches the log escaped -----------------------------------------
assert_fails "a user with a newline in its name is refused by the backend" -- \
    env PGUSER=$'evil\nFAKE-LOG-LINE' psql -X -w -h 127.0.0.1 -p "$PROXY_PORT" -d "$DB" -c "SELECT 1"
it_wait_for 5 grep -qF 'evil\nFAKE-LOG-LINE' "$PROXY_LOG" || true
assert_contains "$(cat "$PROXY_LOG")" '[sess ' "the log has session lines"
assert_contains "$(grep -F 'evil\nFAKE-LOG-LINE@' "$PROXY_LOG" || true)" "closing" \
    "the user name is logged with its newline escaped"
assert_eq "0" "$(grep -c '^FAKE-LOG-LINE' "$PROXY_LOG" || true)" "no forged log line"

# --- admin_auth_trust = on: the console without a password --------------------------------------
it_proxy_start pgdual.admin_auth_trust=on pgdual.auth_file=
assert_contains "$(console admin "" "SHOW STATUS" 2>&1)" "primary|old" \
    "admin_auth_trust = on: the console lets admin in without a password"
it_proxy_stop
it_proxy_start pgdual.auth_file=
assert_fails "no auth_file, admin_auth_trust off: the console is shut" -- \
    console admin "" "SHOW STATUS"
assert_contains "$IT_LAST_OUT" "no auth_file is loaded" "no auth_file: the message says why"
assert_contains "$(cat "$PROXY_LOG")" "the admin console (database pgdual) cannot be logged into" \
    "no auth_file: a warning at start"

# --- admin_reserved_conn: the admin gets in while max_client_conn clients hold every slot -------
it_proxy_start pgdual.max_client_conn=3 pgdual.admin_reserved_conn=1
for i in 1 2 3; do
    it_session_open "held$i" "$DB"
    it_session_send "held$i" "SELECT 'up-$i';"
    it_session_wait "held$i" "up-$i" || it_fail "held client $i did not connect"
done
assert_fails "an ordinary client beyond max_client_conn is refused" -- \
    psql -X -w -v VERBOSITY=verbose -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -c "SELECT 1"
assert_eq "53300" "$(startup_code postgres "$DB")" "refused: 53300"
assert_contains "$IT_LAST_OUT" "too many" "refused: too many connections"
assert_contains "$(console admin "$IT_ADMIN_PW" "SHOW STATUS" 2>&1)" "sessions_active|" \
    "the admin still gets in (reserved slot) and runs SHOW STATUS"
assert_fails "an ordinary client asking for database pgdual gets no reserved slot" -- \
    psql -X -w -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d pgdual -c "SHOW STATUS"
assert_contains "$IT_LAST_OUT" "too many" "a non-admin on pgdual: too many connections"
# A held console session takes the one reserved slot: a second admin login is refused.
mkfifo "$IT_TMP/adm.in"
psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U admin -d pgdual -tA -f "$IT_TMP/adm.in" \
    >"$IT_TMP/adm.out" 2>&1 &
adm_pid=$!
exec {adm_fd}>"$IT_TMP/adm.in"
echo "SHOW HELP;" >&"$adm_fd"
it_wait_for 10 grep -q "SHOW STATUS" "$IT_TMP/adm.out" || it_failed "the held admin got no answer"
assert_fails "a second admin beyond the reserve is refused" -- \
    console admin "$IT_ADMIN_PW" "SHOW STATUS"
assert_contains "$IT_LAST_OUT" "too many" "beyond the reserve: too many connections"
exec {adm_fd}>&-
wait "$adm_pid" || true
it_wait_for 10 console admin "$IT_ADMIN_PW" "SHOW STATUS" ||
    it_failed "the reserved slot did not come back when the admin left"
it_pass "the reserved slot comes back when the admin leaves"
# A console login that takes the reserved slot and stalls in SASL holds it 3 seconds, not for
# client_login_timeout_ms (60 s here): the operator gets in soon after (review 14, finding 4).
python3 -I -S - "$PROXY_PORT" "$IT_TMP/stalled.out" <<'PY' &
import socket, struct, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
body = struct.pack("!I", 196608) + b"user\0admin\0database\0pgdual\0\0"
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(struct.pack("!I", len(body) + 4) + body)
first = s.recv(4096)
open(out, "w").write("auth" if first[:1] == b"R" else "other")
start = time.monotonic()
try:
    while s.recv(4096):  # never answers the SASL request; waits for pgdual to close
        pass
except OSError:
    pass
open(out, "a").write(" closed after %.0f s" % (time.monotonic() - start))
PY
stalled_pid=$!
stalled() { grep -q "^auth" "$IT_TMP/stalled.out" 2>/dev/null; }
it_wait_for 10 stalled || it_failed "the stalled console login did not get its SASL request"
assert_fails "while the stalled login holds the reserved slot, an admin is refused" -- \
    console admin "$IT_ADMIN_PW" "SHOW STATUS"
it_wait_for 15 console admin "$IT_ADMIN_PW" "SHOW STATUS" ||
    it_failed "the stalled login kept the reserved slot beyond its 3-second bound"
it_pass "the stalled login lost the reserved slot within seconds; the admin got in"
wait "$stalled_pid" || true
assert_contains "$(cat "$IT_TMP/stalled.out")" "closed after" "pgdual closed the stalled login"
for i in 1 2 3; do
    it_session_close "held$i"
done
it_proxy_stop
