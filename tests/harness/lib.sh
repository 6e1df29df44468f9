# shellcheck shell=bash
# tests/harness/lib.sh: sourced by the shell integration tests (tests/integration/it_*.sh).
# Loads the clusters' cluster.env, starts and stops a private pgdual per test, counts assertions
# and prints "N passed, N failed" as the script's last line.
#
# Environment:
#   PGDUAL_TEST_CLUSTER  directory given to `pgcluster.sh start` (required)
#   PGDUAL_BIN           pgdual binary (default: $PGDUAL_BUILD_DIR/pgdual, build dir default build/)
#   PGDUAL_TEST_DIRECT=1 develop tests against PostgreSQL itself: it_proxy_start starts no pgdual
#                        and PROXY_PORT is the old cluster's port (admin tests then skip)
#   PGDUAL_TEST_KEEP=1   keep each test's temp dir (ini, pgdual log) even when all passed

IT_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
IT_HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IT_REPO_DIR=$(cd "$IT_HARNESS_DIR/../.." && pwd)
IT_PASSED=0
IT_FAILED=0
IT_SKIPPED=0
export IT_LAST_OUT="" # output of the last assert_fails command
PROXY_PID=""
PROXY_PORT=""
PROXY_LOG=""
PROXY_INI=""

: "${PGDUAL_TEST_CLUSTER:?PGDUAL_TEST_CLUSTER must name the pgcluster.sh directory}"
[[ -f "$PGDUAL_TEST_CLUSTER/cluster.env" ]] || {
    echo "$IT_NAME: $PGDUAL_TEST_CLUSTER/cluster.env missing (pgcluster.sh start first)" >&2
    exit 1
}
# shellcheck disable=SC1091
source "$PGDUAL_TEST_CLUSTER/cluster.env"
export PGHOST PGUSER OLD_PORT NEW_PORT PG_BIN
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
unset PGPORT PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS
PGDUAL_BIN=${PGDUAL_BIN:-${PGDUAL_BUILD_DIR:-$IT_REPO_DIR/build}/pgdual}
PGDUAL_TEST_DIRECT=${PGDUAL_TEST_DIRECT:-0}

IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgdual-$IT_NAME.XXXXXX")
chmod 0755 "$IT_TMP" # the postgres OS user may need to read files here (COPY is client side)

# The admin console always asks for a password (admin_auth_trust = off): every test's pgdual.ini
# names an auth_file holding the admin user's (it_write_ini writes it; a test giving its own
# auth_file puts the line "$IT_ADMIN_LINE" in it), and libpq takes it from a password file for
# user admin on database pgdual only, so every psql -U admin -d pgdual logs in.
IT_ADMIN_PW=it-admin-secret
IT_ADMIN_LINE="\"admin\" \"$IT_ADMIN_PW\""
IT_USERLIST="$IT_TMP/it_userlist.txt"
printf '%s\n' "$IT_ADMIN_LINE" >"$IT_USERLIST"
printf '127.0.0.1:*:pgdual:admin:%s\n' "$IT_ADMIN_PW" >"$IT_TMP/pgpass"
chmod 0600 "$IT_TMP/pgpass"
export PGPASSFILE="$IT_TMP/pgpass"

# ---------------------------------------------------------------------------------------------
# Counting and reporting

it_log() { echo "# $*" >&2; }

it_pass() {
    IT_PASSED=$((IT_PASSED + 1))
    echo "ok - $*"
}

it_failed() {
    IT_FAILED=$((IT_FAILED + 1))
    echo "FAIL - $*" >&2
}

it_proxy_log_tail() {
    if [[ -n "$PROXY_LOG" && -f "$PROXY_LOG" ]]; then
        echo "----- last 40 lines of $PROXY_LOG -----" >&2
        tail -n 40 "$PROXY_LOG" >&2
        echo "-----" >&2
    fi
}

# it_fail MSG: records a failure, shows the proxy log, and ends the test.
it_fail() {
    it_failed "$*"
    exit 1 # it_cleanup shows the proxy log tail
}

# it_skip MSG: ends the test as skipped (exit 0, counted as skipped).
it_skip() {
    IT_SKIPPED=$((IT_SKIPPED + 1))
    echo "skip - $*"
    exit 0
}

# assert_eq EXPECTED ACTUAL MSG
assert_eq() {
    if [[ "$1" == "$2" ]]; then
        it_pass "$3"
    else
        it_failed "$3: expected [$1], got [$2]"
    fi
}

# assert_contains HAYSTACK NEEDLE MSG (fixed string, not a pattern)
assert_contains() {
    if [[ "$1" == *"$2"* ]]; then
        it_pass "$3"
    else
        it_failed "$3: [$2] not found in [$(head -c 2000 <<<"$1")]"
    fi
}

assert_not_contains() {
    if [[ "$1" != *"$2"* ]]; then
        it_pass "$3"
    else
        it_failed "$3: [$2] unexpectedly found in [$(head -c 2000 <<<"$1")]"
    fi
}

# assert_match STRING ERE MSG
assert_match() {
    if [[ "$1" =~ $2 ]]; then
        it_pass "$3"
    else
        it_failed "$3: [$(head -c 2000 <<<"$1")] does not match /$2/"
    fi
}

# assert_ok MSG -- CMD...: CMD must exit 0.
assert_ok() {
    local msg=$1 rc=0
    shift 2
    "$@" >"$IT_TMP/last.out" 2>&1 || rc=$?
    if ((rc == 0)); then
        it_pass "$msg"
    else
        it_failed "$msg: exit $rc: $(tail -c 2000 "$IT_TMP/last.out")"
    fi
}

# assert_fails MSG -- CMD...: CMD must exit non-zero; its output is left in IT_LAST_OUT.
assert_fails() {
    local msg=$1 rc=0
    shift 2
    "$@" >"$IT_TMP/last.out" 2>&1 || rc=$?
    IT_LAST_OUT=$(cat "$IT_TMP/last.out")
    if ((rc != 0)); then
        it_pass "$msg"
    else
        it_failed "$msg: exited 0: $(tail -c 2000 "$IT_TMP/last.out")"
    fi
}

# it_via_proxy: true when a real pgdual is under test (false in PGDUAL_TEST_DIRECT mode), for
# assertions that only hold through pgdual (mirroring to new, admin console, auth).
it_via_proxy() { [[ "$PGDUAL_TEST_DIRECT" != 1 ]]; }
# it_mirrors: true when writes through pgdual reach new too (dual-write); PGDUAL_MIRRORS=0
# turns the checks of new's contents off.
PGDUAL_MIRRORS=${PGDUAL_MIRRORS:-1}
it_mirrors() { it_via_proxy && [[ "$PGDUAL_MIRRORS" == 1 ]]; }

# it_wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds; false on timeout.
it_wait_for() {
    local limit=$1 deadline
    shift
    deadline=$((SECONDS + limit))
    while ((SECONDS <= deadline)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Databases

# psql_old DB ARGS... / psql_new DB ARGS...: psql straight to a cluster (bypassing pgdual).
psql_old() {
    local db=$1
    shift
    psql -X -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -p "$OLD_PORT" -U postgres -d "$db" "$@"
}
psql_new() {
    local db=$1
    shift
    psql -X -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -p "$NEW_PORT" -U postgres -d "$db" "$@"
}
# psql_proxy DB ARGS...: psql through pgdual as user postgres (override with -U after DB). Not
# quiet, so command tags are printed.
psql_proxy() {
    local db=$1
    shift
    [[ -n "$PROXY_PORT" ]] || it_fail "psql_proxy before it_proxy_start"
    psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$db" "$@"
}
# psql_admin SQL: the admin console, unaligned tuples only.
psql_admin() {
    psql -X -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -p "$PROXY_PORT" -U admin -d pgdual -tA -c "$1"
}

# ---------------------------------------------------------------------------------------------
# Admin counters

# it_status KEY: one SHOW STATUS value; empty when SHOW STATUS has no such key.
it_status() {
    psql_admin "SHOW STATUS" | awk -F'|' -v k="$1" '$1 == k { print $2 }'
}

# it_status_mark: remembers every SHOW STATUS value now, the base of it_status_delta.
declare -gA IT_STATUS_MARK=()
it_status_mark() {
    local k v
    IT_STATUS_MARK=()
    while IFS='|' read -r k v; do
        IT_STATUS_MARK[$k]=$v
    done < <(psql_admin "SHOW STATUS")
    ((${#IT_STATUS_MARK[@]} > 0)) || it_fail "SHOW STATUS returned nothing"
}

# it_status_delta KEY: growth of counter KEY since it_status_mark, or "missing" when SHOW STATUS
# lacks the key.
it_status_delta() {
    local now
    now=$(it_status "$1")
    if [[ ! "$now" =~ ^[0-9]+$ || ! "${IT_STATUS_MARK[$1]:-}" =~ ^[0-9]+$ ]]; then
        echo missing
        return 0
    fi
    echo $((now - IT_STATUS_MARK[$1]))
}

# assert_delta KEY OP N MSG [WAIT_S]: the growth of counter KEY since it_status_mark compared
# with N by OP (-eq -ne -ge -gt -le -lt) must hold; with WAIT_S, polls up to that many seconds
# for it to hold (counters of shadow reads may settle after the client's answer).
assert_delta() {
    local key=$1 op=$2 n=$3 msg=$4 wait_s=${5:-0} d deadline
    deadline=$((SECONDS + wait_s))
    while :; do
        d=$(it_status_delta "$key")
        if [[ "$d" != missing ]] && test "$d" "$op" "$n"; then
            it_pass "$msg ($key +$d)"
            return 0
        fi
        ((SECONDS < deadline)) || break
        sleep 0.1
    done
    it_failed "$msg: $key grew by $d, want $op $n"
}

# it_dials KEY=VALUE...: sets [cutover] dials with the admin console, then gives the workers
# time to get them (they apply at each session's next statement).
it_dials() {
    local kv
    for kv in "$@"; do
        psql_admin "SET ${kv%%=*} = ${kv#*=}" >/dev/null || it_fail "admin SET ${kv%%=*} = ${kv#*=}"
    done
    sleep 0.5
}

# ---------------------------------------------------------------------------------------------
# Interactive sessions: a psql through pgdual fed from a FIFO, so a test can interleave its
# statements with other events. Output (-tA, errors included) goes to $IT_TMP/NAME.out.

declare -gA IT_SESSION_FD=() IT_SESSION_PID=()

# it_session_open NAME DB: starts the session (it connects at once).
it_session_open() {
    local name=$1 db=$2 fd
    mkfifo "$IT_TMP/$name.in"
    psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$db" -tA -f "$IT_TMP/$name.in" \
        >"$IT_TMP/$name.out" 2>&1 &
    IT_SESSION_PID[$name]=$!
    exec {fd}>"$IT_TMP/$name.in"
    IT_SESSION_FD[$name]=$fd
}

# it_session_send NAME SQL: queues SQL (with its ';') on the session; fails when psql is gone.
it_session_send() {
    local fd=${IT_SESSION_FD[$1]}
    kill -0 "${IT_SESSION_PID[$1]}" 2>/dev/null || {
        it_failed "session $1 is gone: $(tail -c 1000 "$IT_TMP/$1.out")"
        return 1
    }
    (
        trap '' PIPE
        printf '%s\n' "$2" >&"$fd"
    )
}

# it_session_count NAME LINE: how many output lines of the session are exactly LINE.
it_session_count() {
    grep -cxF -- "$2" "$IT_TMP/$1.out" || true
}

# it_session_wait NAME LINE [N [SECONDS]]: waits (default 10 s) until the session printed LINE
# at least N (default 1) times.
it_session_wait() {
    local name=$1 line=$2 n=${3:-1} limit=${4:-10} deadline
    deadline=$((SECONDS + limit))
    while (($(it_session_count "$name" "$line") < n)); do
        ((SECONDS <= deadline)) || return 1
        sleep 0.05
    done
}

# it_session_close NAME: ends the session's input and waits (up to 10 s) for psql to exit.
it_session_close() {
    local name=$1 fd=${IT_SESSION_FD[$1]} pid=${IT_SESSION_PID[$1]} i
    exec {fd}>&-
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "IT_SESSION_FD[$name]" "IT_SESSION_PID[$name]"
}

# it_now_ms: wall clock in milliseconds.
it_now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# it_createdb NAME: (re)creates database NAME on both old and new.
it_createdb() {
    local name=$1 port
    for port in "$OLD_PORT" "$NEW_PORT"; do
        psql -X -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
            -c "SET client_min_messages = warning" \
            -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" \
            -c "CREATE DATABASE \"$name\"" ||
            it_fail "creating database $name on port $port"
    done
}

# ---------------------------------------------------------------------------------------------
# pgdual

# it_write_ini FILE [section.key=value | raw line]...: default test config with overrides. A
# section.key=value argument replaces that key when the defaults have it and is appended to the
# section otherwise; an argument without a section goes to [pgdual].
it_write_ini() {
    local file=$1
    shift
    local -a order=() # "section.key" in first-seen order
    local -A vals=()
    local arg sec key val entry
    local -a defaults=(
        pgdual.listen_addr=127.0.0.1
        pgdual.listen_port=0
        pgdual.workers=2
        pgdual.auth_type=trust
        pgdual.admin_users=admin
        "pgdual.auth_file=$IT_USERLIST"
        pgdual.state_file=pgdual.state
        pgdual.journal_dir=journal
        pgdual.divergence_log=divergences.jsonl
        pgdual.metrics_port=0
        pgdual.log_level=info
        # Tests see the states they make: pgdual's own catch-up only where a test asks for it.
        pgdual.reconcile_auto=off
        # A primary switch syncs sequences in this test's database only (named like the test),
        # never in the databases of tests running at the same time.
        "pgdual.sequence_sync_databases=$IT_NAME"
        "backends.old=host=127.0.0.1 port=$OLD_PORT"
        "backends.new=host=127.0.0.1 port=$NEW_PORT"
        cutover.primary=old
        cutover.read_new_percent=0
        cutover.compare_percent=100
    )
    for arg in "${defaults[@]}" "$@"; do
        [[ "$arg" == *=* ]] || it_fail "it_write_ini: bad argument '$arg' (want section.key=value)"
        key=${arg%%=*}
        val=${arg#*=}
        key=${key//[[:space:]]/}
        val=${val#"${val%%[![:space:]]*}"}
        [[ "$key" == *.* ]] || key="pgdual.$key"
        [[ -n "${vals[$key]+set}" ]] || order+=("$key")
        vals[$key]=$val
    done
    {
        echo "; written by tests/harness/lib.sh for $IT_NAME"
        local -A done_sec=()
        for entry in "${order[@]}"; do
            sec=${entry%%.*}
            [[ -z "${done_sec[$sec]:-}" ]] || continue
            done_sec[$sec]=1
            echo "[$sec]"
            for key in "${order[@]}"; do
                if [[ "${key%%.*}" == "$sec" ]]; then
                    echo "${key#*.} = ${vals[$key]}"
                fi
            done
        done
    } >"$file"
}

# it_proxy_start [section.key=value]...: writes $IT_TMP/pgdual.ini and starts pgdual on a free
# port; exports PROXY_PORT and PROXY_PID. In PGDUAL_TEST_DIRECT mode, points at old instead.
it_proxy_start() {
    local deadline line
    [[ -z "$PROXY_PID" ]] || it_proxy_stop
    PROXY_INI="$IT_TMP/pgdual.ini"
    PROXY_LOG="$IT_TMP/pgdual.log"
    it_write_ini "$PROXY_INI" "$@"
    if [[ "$PGDUAL_TEST_DIRECT" == 1 ]]; then
        PROXY_PORT=$OLD_PORT
        export PROXY_PORT
        it_log "PGDUAL_TEST_DIRECT=1: talking to old (port $OLD_PORT) directly"
        return 0
    fi
    [[ -x "$PGDUAL_BIN" ]] || it_fail "pgdual binary $PGDUAL_BIN not found"
    : >"$PROXY_LOG"
    "$PGDUAL_BIN" -c "$PROXY_INI" 2>>"$PROXY_LOG" >>"$PROXY_LOG" </dev/null &
    PROXY_PID=$!
    export PROXY_PID
    deadline=$((SECONDS + 10))
    while ((SECONDS <= deadline)); do
        line=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9]*' "$PROXY_LOG" || true)
        if [[ -n "$line" ]]; then
            PROXY_PORT=${line##*:}
            export PROXY_PORT
            it_log "pgdual pid $PROXY_PID listening on 127.0.0.1:$PROXY_PORT (log $PROXY_LOG)"
            return 0
        fi
        if ! kill -0 "$PROXY_PID" 2>/dev/null; then
            wait "$PROXY_PID" 2>/dev/null || true
            PROXY_PID=""
            it_fail "pgdual exited during startup"
        fi
        sleep 0.05
    done
    it_fail "pgdual printed no 'listening on' line within 10 s"
}

# it_rawpg DB SCRIPT: runs tests/harness/rawpg.py's SCRIPT against pgdual (60 s at most).
it_rawpg() {
    timeout 60 python3 "$IT_HARNESS_DIR/rawpg.py" "$PROXY_PORT" "$1" "$2"
}

# it_same DB TABLE MESSAGE: TABLE (a name or any FROM item) holds the same rows on old and new in
# DB (md5 of every row's text, sorted).
it_same() {
    local sql="SELECT md5(coalesce(string_agg(w_::text, ',' ORDER BY w_::text), '')) FROM $2 w_"
    assert_eq "$(psql_old "$1" -tA -c "$sql")" "$(psql_new "$1" -tA -c "$sql")" "$3"
}

# it_reorder_src DB: the table src (v text) of DB gets another physical row order on new: every
# other row (v ending in an even digit) moved to the end of new's heap by an UPDATE run there
# directly. Values then taken from src in scan order differ unless pgdual pins them.
it_reorder_src() {
    local agg="SELECT string_agg(v, ',') FROM src"
    psql_new "$1" -q -c "UPDATE src SET v = v WHERE right(v, 1) IN ('0', '2', '4', '6', '8')"
    [[ "$(psql_old "$1" -tA -c "$agg")" != "$(psql_new "$1" -tA -c "$agg")" ]] ||
        it_fail "setup: src's physical order is the same on both sides"
}

# it_pinned_same DB NAME TABLE PINNED: since it_status_mark, PINNED statements were pinned and
# none counted, and TABLE is the same on old and new.
it_pinned_same() {
    assert_eq "$4" "$(it_status_delta pinned_writes_total)" "$2: pinned"
    assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "$2: nothing counted"
    it_same "$1" "$3" "$2: $3 identical on old and new"
}

# it_as_ref REF DB TABLE MESSAGE: on old, TABLE in DB (written through pgdual) holds the rows it
# holds in REF (the same script run on old alone).
it_as_ref() {
    local sql="SELECT coalesce(string_agg(w_::text, ',' ORDER BY w_::text), '') FROM $3 w_"
    assert_eq "$(psql_old "$1" -tA -c "$sql")" "$(psql_old "$2" -tA -c "$sql")" "$4"
}

# it_free_port: prints a loopback port nothing listens on now (as pgcluster.sh picks the
# clusters' ports), for a second listener such as metrics_port.
it_free_port() {
    bash "$IT_HARNESS_DIR/pgcluster.sh" free-port
}

# Sanitizer reports in the pgdual log are failures of the test that ran it.
it_check_sanitizer_log() {
    [[ -n "$PROXY_LOG" && -f "$PROXY_LOG" ]] || return 0
    if grep -qE 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:' "$PROXY_LOG"; then
        it_failed "sanitizer report in $PROXY_LOG"
        grep -m5 -A20 -E 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:' \
            "$PROXY_LOG" >&2 || true
    fi
}

# it_proxy_stop: SIGTERM, then checks pgdual stopped within 10 s with status 0 (SIGKILL if not).
it_proxy_stop() {
    local pid=$PROXY_PID rc=0 i
    [[ -n "$pid" ]] || return 0
    PROXY_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        it_failed "pgdual did not stop within 10 s of SIGTERM"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    else
        wait "$pid" 2>/dev/null || rc=$?
        if ((rc == 0)); then
            it_pass "pgdual stopped cleanly on SIGTERM"
        else
            it_failed "pgdual exited with status $rc after SIGTERM"
        fi
    fi
    it_check_sanitizer_log
}

# ---------------------------------------------------------------------------------------------
# Cleanup: always stop pgdual and print the summary as the last line.

it_on_err() {
    local rc=$1 line=$2 cmd=$3
    it_failed "command failed with status $rc at $IT_NAME.sh:$line: $cmd"
}

it_cleanup() {
    local rc=$?
    set +e
    trap - ERR
    # Children still running (background clients) are ended by pid, not by name.
    local j
    for j in $(jobs -p); do
        [[ "$j" == "$PROXY_PID" ]] || kill -KILL "$j" 2>/dev/null
    done
    if [[ -n "$PROXY_PID" ]]; then
        it_proxy_stop
    fi
    if ((rc != 0 && IT_FAILED == 0)); then
        it_failed "script exited with status $rc"
    fi
    if ((IT_FAILED > 0)); then
        it_proxy_log_tail
        echo "# kept $IT_TMP for inspection" >&2
    elif [[ "${PGDUAL_TEST_KEEP:-0}" != 1 ]]; then
        rm -rf "$IT_TMP"
    fi
    if ((IT_PASSED + IT_FAILED == 0 && IT_SKIPPED == 0)); then
        it_failed "no assertion ran"
    fi
    if ((IT_SKIPPED > 0)); then
        echo "$IT_PASSED passed, $IT_FAILED failed, $IT_SKIPPED skipped"
    else
        echo "$IT_PASSED passed, $IT_FAILED failed"
    fi
    if ((IT_FAILED > 0)); then
        exit 1
    fi
    exit 0
}

set -o errtrace
trap 'it_on_err $? $LINENO "$BASH_COMMAND"' ERR
trap it_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
