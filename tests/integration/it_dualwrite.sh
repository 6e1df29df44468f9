#!/usr/bin/env bash
# tests/integration/it_dualwrite.sh: writes through pgdual reach old and new identically
# (DDL, DML, ON CONFLICT, data-modifying CTEs, \copy, transactions, savepoints); lockstep keeps
# order-dependent updates of concurrent sessions equal; a write failing only on new is a logged
# divergence the client never sees; SHOW DIVERGENCES groups divergences by fingerprint and kind;
# nondeterministic writes are counted and logged without literals; a cancel of a mirrored
# pg_sleep returns fast.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_dualwrite
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
LOG="$IT_TMP/divergences.jsonl"

# same_table TABLE [ORDER]: md5 of COPY (SELECT … ORDER BY …) equal on old and new.
same_table() {
    local sql="COPY (SELECT * FROM $1 ORDER BY ${2:-1}) TO STDOUT"
    local a b
    a=$(psql_old "$DB" -tA -c "$sql" | md5sum)
    b=$(psql_new "$DB" -tA -c "$sql" | md5sum)
    assert_eq "$a" "$b" "table $1 identical on old and new"
}
status_value() { psql_admin "SHOW STATUS" | awk -F'|' -v k="$1" '$1 == k { print $2 }'; }

# --- DDL + DML script ------------------------------------------------------------------------
psql_proxy "$DB" -q <<'SQL'
CREATE TABLE acct (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2));
CREATE INDEX acct_owner ON acct (owner);
INSERT INTO acct VALUES (1, 'ann', 10), (2, 'bob', 20), (3, 'cy', 30), (4, 'di', 40);
ALTER TABLE acct ADD COLUMN note text DEFAULT 'n/a';
UPDATE acct SET balance = balance * 2 WHERE id IN (2, 3);
DELETE FROM acct WHERE id = 4;
CREATE TABLE scratch (x int PRIMARY KEY);
INSERT INTO scratch SELECT generate_series(1, 50);
TRUNCATE scratch;
INSERT INTO scratch VALUES (7);
INSERT INTO acct VALUES (1, 'ann2', 0) ON CONFLICT (id) DO UPDATE SET owner = excluded.owner || '!';
INSERT INTO acct VALUES (5, 'eve', 50) ON CONFLICT DO NOTHING;
WITH moved AS (DELETE FROM acct WHERE id = 3 RETURNING id, owner, balance)
INSERT INTO acct (id, owner, balance) SELECT id + 100, owner, balance FROM moved;
SQL
assert_eq "1:ann2!:10.00,2:bob:40.00,5:eve:50.00,103:cy:60.00" \
    "$(psql_new "$DB" -tA -c "SELECT string_agg(id || ':' || owner || ':' || balance, ',' ORDER BY id) FROM acct")" \
    "new holds the script's result"
same_table acct
same_table scratch

# --- \copy of 100,000 rows ---------------------------------------------------------------------
seq 1 100000 | awk '{ printf "%d\trow %d\t%d\n", $1, $1, $1 % 97 }' >"$IT_TMP/rows.tsv"
psql_proxy "$DB" -c "CREATE TABLE bulk (id int PRIMARY KEY, label text, k int)"
assert_eq "COPY 100000" "$(psql_proxy "$DB" -c "\\copy bulk FROM '$IT_TMP/rows.tsv'")" "\\copy through pgdual"
same_table bulk
assert_eq "100000" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM bulk")" "100,000 rows on new"

# --- transactions ------------------------------------------------------------------------------
psql_proxy "$DB" -c "CREATE TABLE tx (id int PRIMARY KEY, v text)"
psql_proxy "$DB" -q -c "BEGIN" -c "INSERT INTO tx VALUES (1, 'rolled back')" -c "ROLLBACK"
assert_eq "0|0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM tx")|$(psql_new "$DB" -tA -c "SELECT count(*) FROM tx")" \
    "BEGIN/INSERT/ROLLBACK leaves nothing on either side"
psql_proxy "$DB" -q -v ON_ERROR_STOP=0 -c "BEGIN" -c "INSERT INTO tx VALUES (2, 'a')" \
    -c "INSERT INTO tx VALUES (2, 'dup')" -c "COMMIT" >/dev/null 2>&1 || true
assert_eq "0|0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM tx")|$(psql_new "$DB" -tA -c "SELECT count(*) FROM tx")" \
    "an error in a transaction, then COMMIT, leaves nothing on either side"
psql_proxy "$DB" -q -c "BEGIN; INSERT INTO tx VALUES (3, 'kept'); SAVEPOINT s1; INSERT INTO tx VALUES (4, 'undone'); ROLLBACK TO s1; INSERT INTO tx VALUES (5, 'kept too'); COMMIT;"
psql_proxy "$DB" -q -v ON_ERROR_STOP=0 -c "BEGIN" -c "INSERT INTO tx VALUES (6, 'kept')" -c "SAVEPOINT s" \
    -c "INSERT INTO tx VALUES (6, 'dup')" -c "ROLLBACK TO s" -c "INSERT INTO tx VALUES (7, 'after')" -c "COMMIT" >/dev/null 2>&1
assert_eq "3,5,6,7" "$(psql_new "$DB" -tA -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM tx")" \
    "savepoints: new keeps exactly what old keeps"
same_table tx

# --- prepared statements through libpq (pgbench -M prepared writes) ---------------------------
psql_proxy "$DB" -c "CREATE TABLE prep (id int PRIMARY KEY, n int)" -c "INSERT INTO prep SELECT g, 0 FROM generate_series(1, 10) g"
printf '\\set id random(1, 10)\nUPDATE prep SET n = n + 1 WHERE id = :id;\n' >"$IT_TMP/prep.sql"
pgbench -n -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -M prepared -c 4 -j 2 -t 100 -f "$IT_TMP/prep.sql" "$DB" >"$IT_TMP/prep.out" 2>&1
assert_eq "400" "$(psql_new "$DB" -tA -c "SELECT sum(n) FROM prep")" "400 prepared updates reached new"
same_table prep

# --- order-dependent updates from concurrent sessions -------------------------------------
# v = v * 3 + k: the final value depends on the order of the updates. In lockstep the primary's
# row lock is kept until new applied the write (autocommit writes run in pgdual's BEGIN/COMMIT on
# old; a client COMMIT waits for new), so new applies them in old's order.
psql_proxy "$DB" -c "CREATE TABLE counter (id int PRIMARY KEY, v numeric)" -c "INSERT INTO counter VALUES (1, 1)"

# order_run NAME MODE COUNT STATEMENT-FORMAT: 8 clients, COUNT transactions each, statement
# formatted with the client's k; prints nothing, asserts every transaction completed.
order_run() {
    local name=$1 mode=$2 count=$3 fmt=$4 pids=() k
    for k in 1 2 3 4 5 6 7 8; do
        # shellcheck disable=SC2059 # the format is the caller's
        printf "$fmt" "$k" >"$IT_TMP/$name$k.sql"
        timeout 180 pgbench -n -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -M "$mode" -c 1 -t "$count" \
            -f "$IT_TMP/$name$k.sql" "$DB" >"$IT_TMP/$name$k.out" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}" || true # not a bare wait: pgdual is a background job of this shell too
    assert_eq "$((8 * count))" "$(grep -h 'number of transactions actually processed' "$IT_TMP/$name"*.out | awk '{ s += $NF } END { print s }' | cut -d/ -f1)" \
        "$name: $((8 * count)) order-dependent transactions completed without errors"
}
counter_equal() {
    [[ "$(psql_old "$DB" -tA -c "SELECT v FROM counter")" == "$(psql_new "$DB" -tA -c "SELECT v FROM counter")" ]]
}
counter_reset() { # directly on both sides, so one failed run does not fail the next
    psql_old "$DB" -c "UPDATE counter SET v = 1" >/dev/null
    psql_new "$DB" -c "UPDATE counter SET v = 1" >/dev/null
}
update_fmt='UPDATE counter SET v = (v * 3 + %d) %% 1000000007 WHERE id = 1;\n'

order_run lockstep-simple simple 200 "$update_fmt"
assert_ok "lockstep: 8 x 200 autocommit updates (simple protocol) end equal on both sides" -- counter_equal
counter_reset
order_run lockstep-prepared prepared 100 "$update_fmt"
assert_ok "lockstep: 8 x 100 autocommit updates (extended protocol) end equal on both sides" -- counter_equal
counter_reset
order_run lockstep-txn prepared 100 "BEGIN;\n${update_fmt}SELECT v FROM counter WHERE id = 1;\nEND;\n"
assert_ok "lockstep: 8 x 100 explicit transactions end equal on both sides" -- counter_equal

# The same in parallel mode: reported, not asserted (parallel trades ordering for latency).
assert_ok "SET mirror_order = parallel" -- psql_admin "SET mirror_order = parallel"
div0=$(status_value divergences_total)
counter_reset
order_run parallel-simple simple 200 "$update_fmt"
if counter_equal; then verdict="equal on both sides"; else verdict="DIVERGED"; fi
it_log "parallel mode, 8 x 200 order-dependent updates: $verdict; divergences flagged by pgdual: $(($(status_value divergences_total) - div0)) (an UPDATE's tag is the same in any order, so only pgdual-verify sees this kind)"
assert_ok "SET mirror_order = lockstep" -- psql_admin "SET mirror_order = lockstep"
counter_reset

# --- a client that leaves while its wrapped write waits for new --------------------------------
# The duplicate-key INSERTs above drew nothing (tx has no default the server makes up, as the
# catalog told pinning), so new is still in_sync; this case starts from a fresh state file anyway
# to show that a finished abandoned write keeps in_sync.
assert_eq "in_sync" "$(status_value secondary_state)" "rejected INSERTs into a table without defaults leave new in_sync"
it_proxy_stop
rm -f "$IT_TMP/pgdual.state"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
# A transaction held directly on new locks the row; the write through pgdual is done on old (in
# pgdual's transaction) and waits on new; the client is killed; the session finishes the write:
# new applies it, then pgdual commits it on old (more cases: it_linger.sh).
psql_proxy "$DB" -c "CREATE TABLE leave (id int PRIMARY KEY, v int)" -c "INSERT INTO leave VALUES (1, 0)" >/dev/null
mkfifo "$IT_TMP/locker.in"
psql -X -h 127.0.0.1 -p "$NEW_PORT" -U postgres -d "$DB" -f "$IT_TMP/locker.in" >"$IT_TMP/locker.out" 2>&1 &
locker=$!
exec 9>"$IT_TMP/locker.in"
echo "BEGIN; SELECT v FROM leave WHERE id = 1 FOR UPDATE;" >&9
div0=$(status_value divergences_total)
psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -c "UPDATE leave SET v = 1 WHERE id = 1" >/dev/null 2>&1 &
leaver=$!
waiting_on_new() {
    [[ "$(psql_new postgres -tA -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE leave%'")" == 1 ]]
}
it_wait_for 10 waiting_on_new || it_failed "the write did not reach new"
kill -KILL "$leaver"
wait "$leaver" 2>/dev/null || true
sleep 0.5
echo "COMMIT;" >&9
exec 9>&-
wait "$locker" || true
it_wait_for 10 eval '[[ "$(psql_old "$DB" -tA -c "SELECT v FROM leave")" == 1 ]]' &&
    it_pass "old committed the abandoned wrapped write once new applied it" ||
    it_failed "old: v = $(psql_old "$DB" -tA -c "SELECT v FROM leave")"
assert_eq "1" "$(psql_new "$DB" -tA -c "SELECT v FROM leave")" "new applied it"
assert_eq "$div0" "$(status_value divergences_total)" "no divergence: both sides have the write"
assert_eq "in_sync" "$(status_value secondary_state)" "secondary_state in_sync"

# --- a write failing only on new ---------------------------------------------------------------
before=$(status_value divergences_total)
psql_new "$DB" -c "INSERT INTO tx VALUES (42, 'only on new')"
assert_eq "INSERT 0 1" "$(psql_proxy "$DB" -c "INSERT INTO tx VALUES (42, 'through pgdual')")" \
    "the client sees the primary's success"
assert_eq "$((before + 1))" "$(status_value divergences_total)" "the unique violation on new is a divergence"
assert_contains "$(cat "$LOG")" '"kind":"error_mismatch"' "divergence log names the kind"
assert_contains "$(cat "$LOG")" '"sqlstate":"23505"' "divergence log has new's SQLSTATE"
assert_eq "1" "$(psql_proxy "$DB" -tA -c "SELECT 1")" "the session keeps working"

# --- SHOW DIVERGENCES: a row changed on new alone, then updated through pgdual twice -----------
psql_proxy "$DB" -q -c "CREATE TABLE drift (id int PRIMARY KEY, v int)" \
    -c "INSERT INTO drift VALUES (1, 10), (2, 20)"
psql_new "$DB" -c "UPDATE drift SET v = 99 WHERE id = 2"
before=$(status_value divergences_total)
assert_eq "21" "$(psql_proxy "$DB" -q -tA -c "UPDATE drift SET v = v + 1 WHERE id = 2 RETURNING v")" \
    "the client gets old's RETURNING row"
assert_eq "23" "$(psql_proxy "$DB" -q -tA -c "UPDATE drift SET v = v + 2 WHERE id = 2 RETURNING v")" \
    "again (other literal, same fingerprint)"
assert_eq "102" "$(psql_new "$DB" -tA -c "SELECT v FROM drift WHERE id = 2")" "new applied both"
assert_eq "$((before + 2))" "$(status_value divergences_total)" "divergences_total grew by 2"
divs=$(psql_admin "SHOW DIVERGENCES")
it_log "SHOW DIVERGENCES:"$'\n'"$divs"
drift_stmt='UPDATE drift SET v = v + $1 WHERE id = $2 RETURNING v'
drift=$(awk -F'|' -v st="$drift_stmt" '$6 == st' <<<"$divs")
assert_eq "1" "$(grep -c . <<<"$drift" || true)" "one group for the two UPDATEs (normalized statement)"
IFS="|" read -r fp kind count first last _ <<<"$drift"
assert_eq "result_mismatch|2" "$kind|$count" "the group: kind result_mismatch, count 2"
assert_match "$fp" '^[0-9a-f]{16}$' "fingerprint is 16 hex digits"
assert_contains "$(grep -F '"statement":"UPDATE drift SET v = v + $1' "$LOG")" "\"fingerprint\":\"$fp\"" \
    "the fingerprint is the one in the divergence log"
iso='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'
assert_match "$first" "$iso" "first_seen is ISO-8601 UTC"
assert_match "$last" "$iso" "last_seen is ISO-8601 UTC"
if [[ ! "$last" < "$first" ]]; then it_pass "last_seen >= first_seen"; else it_failed "last_seen $last < first_seen $first"; fi
assert_eq "$drift" "$(head -n 1 <<<"$divs")" "the most recently seen group is listed first"
assert_contains "$divs" '|error_mismatch|1|' "the earlier error_mismatch groups are listed too"
assert_eq "error_mismatch|1" \
    "$(awk -F'|' '$6 == "INSERT INTO tx VALUES ($1, $2)" { print $2 "|" $3 }' <<<"$divs")" \
    "the unique violation on new: its own group"
assert_not_contains "$divs" "UPDATE leave" "the finished abandoned write is no divergence"
assert_not_contains "$divs" "through pgdual" "no literal in SHOW DIVERGENCES (log_literals = off)"

# --- nondeterministic writes: pinned, or counted when they cannot be ----------------------------
nd=$(status_value nondeterministic_writes_total)
pinned=$(status_value pinned_writes_total)
psql_proxy "$DB" -c "CREATE TABLE events (id int PRIMARY KEY, at timestamptz, secret text)"
psql_proxy "$DB" -c "INSERT INTO events VALUES (1, now(), 'literal-xyzzy')"
assert_eq "$((pinned + 1))" "$(status_value pinned_writes_total)" "INSERT … now() pinned"
assert_eq "$nd" "$(status_value nondeterministic_writes_total)" "…and not counted as nondeterministic"
assert_eq "$(psql_old "$DB" -tA -c "SELECT at FROM events")" \
    "$(psql_new "$DB" -tA -c "SELECT at FROM events")" "new stored old's now()"
# A table without a primary key: an UPDATE of now() cannot be pinned by key.
psql_proxy "$DB" -c "CREATE TABLE nokey (id int, at timestamptz, secret text)" \
    -c "INSERT INTO nokey VALUES (1, NULL, 'x')"
psql_proxy "$DB" -c "UPDATE nokey SET at = now(), secret = 'literal-xyzzy'"
assert_eq "$((nd + 1))" "$(status_value nondeterministic_writes_total)" "UPDATE … now() of a table without key counted"
assert_contains "$(cat "$LOG")" '"kind":"nondeterministic_write"' "logged as nondeterministic_write"
assert_contains "$(cat "$LOG")" 'UPDATE nokey SET at = now(), secret = $1' "logged normalized (literals replaced by placeholders)"
assert_contains "$(cat "$LOG")" '"reason":"its table has no primary key","table":"nokey"' "with its reason and table"
assert_not_contains "$(cat "$LOG")" 'literal-xyzzy' "no literal value in the log (log_literals = off)"

# --- classification: reads stay on the primary, volatile calls are mirrored --------------------
w0=$(status_value writes_mirrored)
psql_proxy "$DB" -tA -c "SELECT 1" -c "SELECT * FROM tx" >/dev/null
assert_eq "$w0" "$(status_value writes_mirrored)" "SELECT 1 and SELECT * FROM t are not mirrored"
psql_proxy "$DB" -q -c "CREATE SEQUENCE s" -c "SELECT nextval('s')" >/dev/null
assert_eq "1" "$(psql_new "$DB" -tA -c "SELECT last_value FROM s")" "SELECT nextval('s') reached new"

# --- cancel of a mirrored pg_sleep ----------------------------------------------------------------
timeout 10 psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" -c "SET statement_timeout = 0" \
    -c "SELECT pg_sleep(30)" >"$IT_TMP/sleep.out" 2>&1 &
sleeper=$!
sleep 0.5
psql_old postgres -tA -c "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'" >"$IT_TMP/active.txt"
# psql forwards SIGINT as a CancelRequest to pgdual (the BackendKeyData is pgdual's).
start=$(date +%s%N) # measured from the cancel itself, as the issue states it
kill -INT "$sleeper"
wait "$sleeper" || true
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
assert_contains "$(cat "$IT_TMP/sleep.out")" "canceling statement" "the cancel reached the statement"
if ((elapsed_ms < 1000)); then it_pass "cancel returned in ${elapsed_ms} ms (< 1 s)"; else it_failed "cancel took ${elapsed_ms} ms"; fi
sleep 0.3
for q in psql_old psql_new; do
    assert_eq "0" "$($q postgres -tA -c "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'")" \
        "pg_sleep running on neither backend ($q)"
done
it_proxy_stop
