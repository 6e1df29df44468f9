#!/usr/bin/env bash
# tests/integration/it_linger.sh: a client killed (SIGKILL) while its unit is on its way does not
# leave the unit on one side only. Old (and new) are held back with locks taken directly on the
# clusters, so the client dies while old still runs an autocommit CREATE INDEX, a TRUNCATE, a
# COPY after its CopyDone, or a COMMIT: once the locks go, both sides hold the same objects and
# rows and secondary_state is still in_sync. When pgdual cannot wait (the linger deadline,
# SIGINT, the SIGTERM drain deadline), the loss is recorded: the secondary leaves in_sync.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_linger
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start

# same_table TABLE: md5 of COPY (SELECT … ORDER BY 1) equal on old and new (and not empty).
table_sum() { "$1" "$DB" -tA -c "COPY (SELECT * FROM $2 ORDER BY 1) TO STDOUT" | md5sum; }
same_table() { [[ "$(table_sum psql_old "$1")" == "$(table_sum psql_new "$1")" ]]; }
rows() { "$1" "$DB" -tA -c "SELECT count(*) FROM $2"; }

# A psql straight to one cluster inside a transaction that holds a lock, fed from a FIFO.
declare -A LOCK_FD=() LOCK_PID=()
lock_take() { # NAME PORT SQL
    local fd
    mkfifo "$IT_TMP/$1.in"
    psql -X -h 127.0.0.1 -p "$2" -U postgres -d "$DB" -tA -f "$IT_TMP/$1.in" \
        >"$IT_TMP/$1.out" 2>&1 &
    LOCK_PID[$1]=$!
    exec {fd}>"$IT_TMP/$1.in"
    LOCK_FD[$1]=$fd
    echo "BEGIN; $3; SELECT 'locked-' || 'now';" >&"$fd"
    it_wait_for 10 grep -q locked-now "$IT_TMP/$1.out" || it_fail "lock $1 not taken: $(cat "$IT_TMP/$1.out")"
}
lock_release() { # NAME (\q: later background jobs inherited the FIFO, so no EOF comes)
    printf 'ROLLBACK;\n\\q\n' >&"${LOCK_FD[$1]}"
    eval "exec ${LOCK_FD[$1]}>&-"
    wait "${LOCK_PID[$1]}" 2>/dev/null || true
    unset "LOCK_FD[$1]" "LOCK_PID[$1]"
    rm -f "$IT_TMP/$1.in"
}
# waiting PORT PATTERN: a statement LIKE PATTERN waits for a lock on that cluster.
waiting() {
    [[ "$(psql -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -tA -c \
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND wait_event_type = 'Lock'
            AND query LIKE '$2'")" == 1 ]]
}
# none_left APP: no backend of application APP on either cluster.
none_left() {
    local port
    for port in "$OLD_PORT" "$NEW_PORT"; do
        [[ "$(psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tA -c \
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1'")" == 0 ]] || return 1
    done
}
# client APP ARGS...: a psql through pgdual in the background (its pid in CLIENT).
CLIENT=""
client() {
    local app=$1
    shift
    PGAPPNAME=$app psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" "$@" \
        >"$IT_TMP/$app.out" 2>&1 &
    CLIENT=$!
}
kill_client() {
    kill -KILL "$CLIENT" 2>/dev/null || true
    wait "$CLIENT" 2>/dev/null || true
}
in_sync() { [[ "$(it_status secondary_state)" == in_sync ]]; }
has_index() { [[ "$("$1" "$DB" -tA -c "SELECT count(*) FROM pg_indexes WHERE indexname = '$2'")" == 1 ]]; }

psql_proxy "$DB" -q -c "CREATE TABLE ix (id int PRIMARY KEY, v int)" \
    -c "CREATE TABLE tr (id int PRIMARY KEY)" \
    -c "CREATE TABLE cp (id int PRIMARY KEY, v text)" \
    -c "CREATE TABLE dc (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)" \
    -c "INSERT INTO ix SELECT g, g % 7 FROM generate_series(1, 100) g" \
    -c "INSERT INTO tr SELECT generate_series(1, 100)"

# --- autocommit CREATE INDEX: not wrapped (not DML) ----------------------------------------------
lock_take lock_old "$OLD_PORT" "LOCK TABLE ix IN SHARE ROW EXCLUSIVE MODE"
lock_take lock_new "$NEW_PORT" "LOCK TABLE ix IN SHARE ROW EXCLUSIVE MODE"
client linger_ci -c "CREATE INDEX ix_v ON ix (v)"
it_wait_for 10 waiting "$OLD_PORT" 'CREATE INDEX ix_v%' || it_fail "CREATE INDEX never waited on old"
kill_client
lock_release lock_old
it_wait_for 10 has_index psql_old ix_v || it_failed "old never built ix_v"
if it_wait_for 10 waiting "$NEW_PORT" 'CREATE INDEX ix_v%'; then
    it_pass "CREATE INDEX, finished on old after its client was killed, reached new"
else
    it_failed "CREATE INDEX never reached new after its client was killed"
fi
lock_release lock_new
if it_wait_for 10 has_index psql_new ix_v; then
    it_pass "ix_v exists on new too"
else
    it_failed "ix_v exists on old only"
fi
if it_wait_for 10 none_left linger_ci; then
    it_pass "the session ended once both sides finished"
else
    it_failed "backends of the killed CREATE INDEX client still there"
fi
assert_eq "in_sync" "$(it_status secondary_state)" "secondary_state in_sync after the CREATE INDEX"

# --- autocommit TRUNCATE ------------------------------------------------------------------------
lock_take lock_old "$OLD_PORT" "LOCK TABLE tr IN SHARE ROW EXCLUSIVE MODE"
lock_take lock_new "$NEW_PORT" "LOCK TABLE tr IN SHARE ROW EXCLUSIVE MODE"
client linger_tr -c "TRUNCATE tr"
it_wait_for 10 waiting "$OLD_PORT" 'TRUNCATE tr%' || it_fail "TRUNCATE never waited on old"
kill_client
lock_release lock_old
it_wait_for 10 eval '[[ "$(rows psql_old tr)" == 0 ]]' || it_failed "old never truncated tr"
it_wait_for 10 waiting "$NEW_PORT" 'TRUNCATE tr%' || it_failed "TRUNCATE never reached new"
lock_release lock_new
if it_wait_for 10 eval '[[ "$(rows psql_new tr)" == 0 ]]'; then
    it_pass "TRUNCATE of a killed client applied on both sides"
else
    it_failed "tr: $(rows psql_old tr) rows on old, $(rows psql_new tr) on new"
fi
it_wait_for 10 none_left linger_tr || it_failed "backends of the killed TRUNCATE client still there"
assert_eq "in_sync" "$(it_status secondary_state)" "secondary_state in_sync after the TRUNCATE"

# --- COPY after its CopyDone --------------------------------------------------------------------
# Old's COPY waits on a row an open transaction inserted with the same key (its unique check
# runs when the rows are flushed, after CopyDone); new's waits on a table lock.
printf '%s\n' 1$'\t'a 2$'\t'b 3$'\t'c 4$'\t'd 5$'\t'e >"$IT_TMP/cp.tsv"
lock_take lock_old "$OLD_PORT" "INSERT INTO cp VALUES (3, 'locker')"
lock_take lock_new "$NEW_PORT" "LOCK TABLE cp IN SHARE ROW EXCLUSIVE MODE"
client linger_cp -c "\\copy cp FROM '$IT_TMP/cp.tsv'"
it_wait_for 10 waiting "$OLD_PORT" 'COPY%cp%' || it_fail "COPY never waited on old"
kill_client
lock_release lock_old
it_wait_for 10 eval '[[ "$(rows psql_old cp)" == 5 ]]' || it_failed "old never finished the COPY"
lock_release lock_new
if it_wait_for 10 eval '[[ "$(rows psql_new cp)" == 5 ]]'; then
    it_pass "COPY of a killed client (CopyDone sent) applied on both sides"
else
    it_failed "cp: $(rows psql_old cp) rows on old, $(rows psql_new cp) on new"
fi
if same_table cp; then it_pass "cp identical on old and new"; else it_failed "cp differs"; fi
it_wait_for 10 none_left linger_cp || it_failed "backends of the killed COPY client still there"
assert_eq "in_sync" "$(it_status secondary_state)" "secondary_state in_sync after the COPY"

# --- COMMIT ---------------------------------------------------------------------------------------
# A deferred unique check makes COMMIT itself wait for an open transaction holding the same key.
lock_take lock_old "$OLD_PORT" "INSERT INTO dc VALUES (1)"
lock_take lock_new "$NEW_PORT" "INSERT INTO dc VALUES (1)"
client linger_commit -c "BEGIN" -c "INSERT INTO dc VALUES (1)" -c "COMMIT"
it_wait_for 10 waiting "$OLD_PORT" 'COMMIT' || it_fail "COMMIT never waited on old"
kill_client
lock_release lock_old
it_wait_for 10 eval '[[ "$(rows psql_old dc)" == 1 ]]' || it_failed "old never committed"
if it_wait_for 10 waiting "$NEW_PORT" 'COMMIT'; then
    it_pass "the COMMIT old completed after its client was killed reached new"
else
    it_failed "the COMMIT never reached new"
fi
lock_release lock_new
if it_wait_for 10 eval '[[ "$(rows psql_new dc)" == 1 ]]'; then
    it_pass "the killed client's transaction is committed on both sides"
else
    it_failed "dc: $(rows psql_old dc) rows on old, $(rows psql_new dc) on new"
fi
it_wait_for 10 none_left linger_commit || it_failed "backends of the killed COMMIT client still there"
assert_eq "in_sync" "$(it_status secondary_state)" "secondary_state in_sync after the COMMIT"

# --- a wrapped autocommit write whose client left: pgdual commits it on old once new has it ------
psql_proxy "$DB" -q -c "CREATE TABLE wr (id int PRIMARY KEY, v int)" -c "INSERT INTO wr VALUES (1, 0)"
lock_take lock_new "$NEW_PORT" "SELECT v FROM wr WHERE id = 1 FOR UPDATE"
div0=$(it_status divergences_total)
client linger_wrap -c "UPDATE wr SET v = 1 WHERE id = 1"
it_wait_for 10 waiting "$NEW_PORT" 'UPDATE wr%' || it_fail "the UPDATE never waited on new"
kill_client
lock_release lock_new
if it_wait_for 10 eval '[[ "$(psql_old "$DB" -tA -c "SELECT v FROM wr")" == 1 ]]'; then
    it_pass "old committed the wrapped write once new applied it"
else
    it_failed "old: v = $(psql_old "$DB" -tA -c "SELECT v FROM wr")"
fi
assert_eq "1" "$(psql_new "$DB" -tA -c "SELECT v FROM wr")" "new applied the wrapped write"
assert_eq "$div0" "$(it_status divergences_total)" "no divergence for the finished wrapped write"
it_wait_for 10 none_left linger_wrap || it_failed "backends of the killed UPDATE client still there"
assert_eq "in_sync" "$(it_status secondary_state)" "secondary_state in_sync after the wrapped write"

# --- past the linger deadline the loss is recorded ----------------------------------------------
# From here on each case takes the secondary out of sync: every pgdual has its own state file.
it_proxy_start pgdual.shutdown_timeout_ms=1500 pgdual.state_file=deadline.state
lock_take lock_new "$NEW_PORT" "LOCK TABLE ix IN SHARE ROW EXCLUSIVE MODE"
client linger_late -c "CREATE INDEX ix_late ON ix (id, v)"
it_wait_for 10 waiting "$NEW_PORT" 'CREATE INDEX ix_late%' || it_fail "CREATE INDEX never waited on new"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync while the client waits"
kill_client
if it_wait_for 10 eval '! in_sync'; then
    it_pass "new still held after shutdown_timeout_ms: secondary_state left in_sync ($(it_status secondary_state))"
else
    it_failed "secondary_state still in_sync with the CREATE INDEX unfinished on new"
fi
assert_contains "$(cat "$PROXY_LOG")" "the secondary is out of sync" "the log says why"
lock_release lock_new

# --- SIGINT with a wrapped write waiting on new -----------------------------------------------
it_proxy_start pgdual.state_file=sigint.state
lock_take lock_new "$NEW_PORT" "SELECT v FROM wr WHERE id = 1 FOR UPDATE"
client linger_int -c "UPDATE wr SET v = 2 WHERE id = 1"
it_wait_for 10 waiting "$NEW_PORT" 'UPDATE wr%' || it_fail "the UPDATE never waited on new"
pid=$PROXY_PID
PROXY_PID=""
kill -INT "$pid"
it_wait_for 10 eval '! kill -0 '"$pid"' 2>/dev/null' || it_failed "pgdual did not stop on SIGINT"
wait "$pid" 2>/dev/null || true
it_check_sanitizer_log
assert_contains "$(cat "$PROXY_LOG")" "the secondary is out of sync" \
    "SIGINT with a write on its way to new: the loss is logged before pgdual exits"
kill_client
lock_release lock_new
it_proxy_start pgdual.state_file=sigint.state
assert_eq "diverged" "$(it_status secondary_state)" "after SIGINT, the restarted pgdual knows new is out of sync"
it_proxy_stop

# --- the SIGTERM drain deadline with a wrapped write waiting on new -----------------------------
it_proxy_start pgdual.shutdown_timeout_ms=1000 pgdual.state_file=drain.state
lock_take lock_new "$NEW_PORT" "SELECT v FROM wr WHERE id = 1 FOR UPDATE"
client linger_term -c "UPDATE wr SET v = 3 WHERE id = 1"
it_wait_for 10 waiting "$NEW_PORT" 'UPDATE wr%' || it_fail "the UPDATE never waited on new"
pid=$PROXY_PID
PROXY_PID=""
kill -TERM "$pid"
it_wait_for 10 eval '! kill -0 '"$pid"' 2>/dev/null' || it_failed "pgdual did not stop after the drain deadline"
wait "$pid" 2>/dev/null || true
it_check_sanitizer_log
assert_contains "$(cat "$PROXY_LOG")" "the secondary is out of sync" \
    "drain deadline with a write on its way to new: the loss is logged before pgdual exits"
kill_client
lock_release lock_new
it_proxy_start pgdual.shutdown_timeout_ms=1000 pgdual.state_file=drain.state
assert_eq "diverged" "$(it_status secondary_state)" "after the drain deadline too (state file)"
it_proxy_stop
