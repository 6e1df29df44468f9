#!/usr/bin/env bash
# tests/integration/it_failed_units.sh: a unit the primary stops at an error reaches new exactly
# as far as old executed it (issue 11 items 3, 4, 9, 10, 12a): statements committed before the
# error stay on both sides, savepoints and aborted transactions end alike (COMMIT AND CHAIN
# included), pipelined batches keep what they committed; a COMMIT anywhere in a Query waits for
# new; a write that fails on new only, or a rejected INSERT that may have drawn sequence values
# on old, takes new out of in_sync (persisted: a restart keeps it), and no read goes there after.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_failed_units
it_createdb "$DB"
for q in psql_old psql_new; do
    "$q" "$DB" -c "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)"
done
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start

# same_table TABLE: md5 of the table's rows equal on old and new.
same_table() {
    local sql="COPY (SELECT * FROM $1 ORDER BY 1) TO STDOUT" a b
    a=$(psql_old "$DB" -tA -c "$sql" | md5sum)
    b=$(psql_new "$DB" -tA -c "$sql" | md5sum)
    assert_eq "$a" "$b" "$2: table $1 identical on old and new"
}
# on_port_is PORT SQL WANT: SQL's one value on that cluster is WANT (for it_wait_for).
on_port_is() {
    [[ "$(psql -X -tA -h 127.0.0.1 -p "$1" -U postgres -d "$DB" -c "$2" 2>/dev/null)" == "$3" ]]
}
SLEEPER="SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(120)'"
# hold_new_row ID: a transaction directly on new holds row ID of t locked until release_new.
hold_new_row() {
    psql -X -q -h 127.0.0.1 -p "$NEW_PORT" -U postgres -d "$DB" \
        -c "BEGIN" -c "SELECT 1 FROM t WHERE id = $1 FOR UPDATE" -c "SELECT pg_sleep(120)" \
        >"$IT_TMP/holder.out" 2>&1 &
    HOLDER=$!
    it_wait_for 20 on_port_is "$NEW_PORT" "$SLEEPER" 1 || it_fail "new's row lock was not taken"
}
release_new() {
    psql_new "$DB" -tA -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(120)'" >/dev/null
    wait "$HOLDER" 2>/dev/null || true
}
ids_on() { "psql_$1" "$DB" -tA -c "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '-') FROM t"; }
# client ARGS...: psql through pgdual that goes on after errors (each -c is one Query).
client() {
    psql -X -q -v ON_ERROR_STOP=0 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" "$@" \
        >>"$IT_TMP/client.out" 2>&1 || true
}

# --- item 3: a Query that commits, then fails ---------------------------------------------------
client -c "BEGIN; INSERT INTO t VALUES (1); COMMIT; SELECT 1/0"
assert_eq "1" "$(ids_on new)" "BEGIN; INSERT; COMMIT; SELECT 1/0: the committed row is on new"
same_table t "commit then error"

# --- item 3: a savepoint made in a Query that then failed -----------------------------------------
client -c "BEGIN" -c "SAVEPOINT sp; INSERT INTO t VALUES (2)" \
    -c "SAVEPOINT sp; UPDATE t SET v = v / 0 WHERE id = 2" -c "ROLLBACK TO sp; COMMIT"
assert_eq "1,2" "$(ids_on new)" "ROLLBACK TO the savepoint of a failed Query keeps the first row on new"
same_table t "savepoint in a failed Query"

# --- item 3: ROLLBACK; INSERT in one Query after a failed transaction ------------------------------
client -c "BEGIN" -c "UPDATE t SET v = 1 / 0" -c "ROLLBACK; INSERT INTO t VALUES (3)"
client -c "BEGIN" -c "SELECT 1 / 0" -c "ROLLBACK; INSERT INTO t VALUES (4)"
assert_eq "1,2,3,4" "$(ids_on new)" "ROLLBACK; INSERT after a failed write / a failed read"
same_table t "ROLLBACK; INSERT"

# --- a read that failed on old inside a transaction: COMMIT rolls back on new too ------------------
client -c "BEGIN" -c "INSERT INTO t VALUES (5)" -c "SELECT 1 / 0" -c "COMMIT"
assert_eq "1,2,3,4" "$(ids_on new)" "a transaction a failed read aborted commits nothing on new"

# --- item 10: COMMIT AND CHAIN in an aborted transaction ---------------------------------------------
client -c "BEGIN" -c "INSERT INTO t VALUES (6)" -c "UPDATE t SET v = 1 / 0" -c "COMMIT AND CHAIN" \
    -c "INSERT INTO t VALUES (7)" -c "COMMIT"
client -c "BEGIN" -c "INSERT INTO t VALUES (8)" -c "SELECT 1 / 0" -c "COMMIT AND CHAIN" \
    -c "INSERT INTO t VALUES (9)" -c "COMMIT"
assert_eq "1,2,3,4,7,9" "$(ids_on new)" "COMMIT AND CHAIN of an aborted transaction drops 6 and 8 on new"
same_table t "COMMIT AND CHAIN"

# --- item 3: a pipelined batch (one Sync) that commits, then fails ---------------------------------
cat >"$IT_TMP/pipe.sql" <<'SQL'
\startpipeline
BEGIN;
INSERT INTO t VALUES (10);
COMMIT;
INSERT INTO t VALUES (11);
UPDATE t SET v = v / 0;
\endpipeline
SQL
pgbench -n -t 1 -M extended -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -f "$IT_TMP/pipe.sql" "$DB" \
    >"$IT_TMP/pipe.out" 2>&1 || true
assert_contains "$(cat "$IT_TMP/pipe.out")" "division by zero" "the pipelined batch failed on old"
assert_eq "1,2,3,4,7,9,10" "$(ids_on old)" "old kept the committed Execute, not the failed tail"
assert_eq "1,2,3,4,7,9,10" "$(ids_on new)" "new too"

# --- several statements rejected in a transaction a failed read aborted (review finding 9) -----
client -c "BEGIN" -c "INSERT INTO t VALUES (12)" -c "SELECT 1 / 0" -c "INSERT INTO t VALUES (13)" \
    -c "INSERT INTO t VALUES (14)" -c "ROLLBACK"
assert_eq "1,2,3,4,7,9,10" "$(ids_on new)" "rejected INSERTs in an aborted transaction: nothing on new"

# --- COMMIT AND CHAIN is answered only once new has committed (review finding 7) ----------------
# A deferred trigger on new alone makes new's commit slow; the answer must wait for it.
psql_new "$DB" -q <<'SQL'
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END$$;
CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION slow_commit();
SQL
it_session_open chain "$DB"
it_session_send chain "BEGIN;"
it_session_send chain "INSERT INTO t VALUES (15);"
it_session_send chain "COMMIT AND CHAIN;"
it_session_wait chain COMMIT 1 20 || it_failed "COMMIT AND CHAIN was not answered"
assert_eq "1" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM t WHERE id = 15")" \
    "when COMMIT AND CHAIN is answered, new has committed the row"
it_session_send chain "COMMIT;"
it_session_close chain
psql_new "$DB" -q -c "DROP TRIGGER slow ON t" -c "DROP FUNCTION slow_commit()"

# --- an autocommit write (run in pgdual's BEGIN/COMMIT on old) that fails at commit on both ------
DEFER_FAIL="CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
  \$\$BEGIN RAISE EXCEPTION 'refused at commit'; END\$\$;
CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON w DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION refuse();"
for q in psql_old psql_new; do
    "$q" "$DB" -q -c "CREATE TABLE w (id int PRIMARY KEY)" -c "$DEFER_FAIL"
done
assert_fails "an INSERT refused at commit on both sides is the client's error" -- \
    psql_proxy "$DB" -c "INSERT INTO w VALUES (1)"
assert_eq "0|0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM w")|$(psql_new "$DB" -tA -c "SELECT count(*) FROM w")" \
    "no row on either side"

# --- a typo ran nothing: the server parses the whole text first (session 9 finding) -------------
client -c "SELEC 1"
client -c "INSERT INTO w VALUES (2); SELEC 1"
client -c "BEGIN" -c "INSERT INTO t VALUES (16)" -c "SELEC 1" -c "COMMIT"
client -c "BEGIN" -c "INSERT INTO t VALUES (17)" -c "SELEC 1" -c "ROLLBACK" -c "INSERT INTO t VALUES (18)"
assert_contains "$(cat "$IT_TMP/client.out")" 'syntax error at or near "SELEC"' "old rejected the typos"
assert_eq "0|0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM w")|$(psql_new "$DB" -tA -c "SELECT count(*) FROM w")" \
    "an INSERT in a Query with a typo ran on neither side"
assert_eq "0|1" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM t WHERE id IN (16, 17)")|$(psql_new "$DB" -tA -c "SELECT count(*) FROM t WHERE id = 18")" \
    "a block a typo aborted commits nothing on new; the next write after ROLLBACK does"

assert_eq "in_sync" "$(it_status secondary_state)" "none of these took new out of sync"
assert_eq "0" "$(it_status divergences_total)" "and none was a divergence"
same_table t "after the transactions above"

# --- item 12a: a COMMIT in the middle of a Query waits for new ------------------------------------
# new holds row 1 locked (directly), so the client's first UPDATE of it is pending there. The
# Query "UPDATE ...; COMMIT; SELECT 1" must not reach old while new is behind: old's lock on row
# 1 is still held (NOWAIT fails) until new is released.
hold_new_row 1
it_session_open w "$DB"
it_session_send w "BEGIN;"
it_session_send w "UPDATE t SET v = v * 3 + 1 WHERE id = 1;"
# psql sends statements joined by \; as one Query.
it_session_send w "UPDATE t SET v = v + 1 WHERE id = 2 \\; COMMIT \\; SELECT 'done';"
on_old() { echo "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND query LIKE '$1%'"; }
it_wait_for 20 on_port_is "$OLD_PORT" "$(on_old 'UPDATE t SET v = v ')" 1 ||
    it_fail "old did not get the first UPDATE"
# Given 3 s, a gate that let the Query through would show it on old.
if it_wait_for 3 on_port_is "$OLD_PORT" "$(on_old 'UPDATE t SET v = v + 1')" 1; then
    it_failed "the Query with a COMMIT reached old while new was behind"
else
    it_pass "the Query with a COMMIT waits while new is behind"
fi
assert_fails "old's row 1 stays locked while new is behind (the COMMIT waits)" -- \
    psql_old "$DB" -c "SELECT 1 FROM t WHERE id = 1 FOR UPDATE NOWAIT"
release_new
it_session_wait w done || it_failed "the client's Query finished: $(cat "$IT_TMP/w.out")"
it_session_close w
same_table t "order-dependent update behind a COMMIT in a multi-statement Query"
assert_eq "in_sync" "$(it_status secondary_state)" "still in_sync"

# --- a queue pop (lock-only read) that picks another row on new changes no data -----------------
hold_new_row 1
it_status_mark
assert_eq "1" "$(psql_proxy "$DB" -tA -c "SELECT id FROM t ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")" \
    "old's queue pop answers"
release_new
assert_delta divergences_total -eq 1 "new popped another row: a divergence is counted"
assert_eq "in_sync" "$(it_status secondary_state)" "but a lock-only read changes no data: in_sync"

# --- item 9: a write that fails on new only takes new out of in_sync --------------------------------
psql_new "$DB" -c "ALTER TABLE t ADD CONSTRAINT only_on_new CHECK (v < 1000)"
it_dials read_new_percent=100
it_status_mark
assert_eq "UPDATE 1" "$(psql_proxy "$DB" -c "UPDATE t SET v = 5000 WHERE id = 3")" \
    "the client sees old's success"
assert_eq "diverged" "$(it_status secondary_state)" "secondary_state is diverged once the reply is out"
assert_delta divergences_total -eq 1 "the failure on new is one divergence"
assert_eq "3" "$(psql_proxy "$DB" -tA -c "SELECT count(*) FROM t WHERE v = 5000 OR id < 4")" \
    "a read sees old's row"
assert_delta reads_served_new -eq 0 "no read is routed to a diverged new"
it_proxy_stop
it_proxy_start
assert_eq "diverged" "$(it_status secondary_state)" "diverged survives a restart (state file)"
it_proxy_stop
psql_new "$DB" -c "ALTER TABLE t DROP CONSTRAINT only_on_new" -c "UPDATE t SET v = 5000 WHERE id = 3"

# --- item 9: lock_timeout that only new hits --------------------------------------------------------
rm -f "$IT_TMP/pgdual.state"
psql_new "$DB" -c "ALTER DATABASE $DB SET lock_timeout = '300ms'"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
hold_new_row 4
assert_eq "UPDATE 1" "$(psql_proxy "$DB" -c "UPDATE t SET v = 44 WHERE id = 4")" "old applies it"
assert_eq "diverged" "$(it_status secondary_state)" "new's lock_timeout takes it out of in_sync"
release_new
psql_new "$DB" -c "ALTER DATABASE $DB RESET lock_timeout" -c "UPDATE t SET v = 44 WHERE id = 4"
it_proxy_stop

# --- item 4: an INSERT old rejects may have drawn a sequence value there ---------------------------
# Pinned (issue 12): new never draws its own ids, so the value old lost does not matter: the next
# row has old's id on new too, and new stays in_sync.
rm -f "$IT_TMP/pgdual.state"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
psql_proxy "$DB" -q -c "CREATE TABLE s (id serial PRIMARY KEY, k int UNIQUE)" -c "INSERT INTO s (k) VALUES (1)"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the rejected INSERT"
it_status_mark
assert_fails "a duplicate key is the client's error" -- psql_proxy "$DB" -c "INSERT INTO s (k) VALUES (1)"
psql_proxy "$DB" -q -c "INSERT INTO s (k) VALUES (2)"
assert_eq "1:1,3:2" "$(psql_new "$DB" -tA -c "SELECT string_agg(id || ':' || k, ',' ORDER BY id) FROM s")" \
    "after the rejected INSERT new stores old's next id (3), not its own (2)"
same_table s "after a rejected pinned INSERT"
assert_delta nondeterministic_writes_total -eq 0 "the rejected, pinned INSERT is not counted"
assert_eq "in_sync" "$(it_status secondary_state)" "and new stays in_sync"
# Without pinning the old safety net holds: the value old drew is lost to new, so out of sync.
psql_admin "SET pin_writes = off" >/dev/null
it_status_mark
assert_fails "a duplicate key is the client's error" -- psql_proxy "$DB" -c "INSERT INTO s (k) VALUES (1)"
assert_delta nondeterministic_writes_total -eq 1 "pin_writes = off: the rejected INSERT is counted"
assert_eq "diverged" "$(it_status secondary_state)" "and takes new out of in_sync"
it_proxy_stop

# --- a rejected call of a user function may have drawn values (review finding 5) ---------------
rm -f "$IT_TMP/pgdual.state"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
psql_proxy "$DB" -q -c "CREATE TABLE audit (id serial PRIMARY KEY, note text)" \
    -c "CREATE FUNCTION audit_then_fail() RETURNS int LANGUAGE plpgsql AS \$\$BEGIN INSERT INTO audit (note) VALUES ('x'); RETURN 1 / 0; END\$\$"
assert_fails "the function fails" -- psql_proxy "$DB" -c "SELECT audit_then_fail()"
assert_eq "diverged" "$(it_status secondary_state)" "a failed user function takes new out of in_sync"
it_proxy_stop

# --- a text only libpg_query rejects may have run: a CALL that committed, then failed (review 16) --
rm -f "$IT_TMP/pgdual.state"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
psql_proxy "$DB" -q -c "CREATE TABLE proc_rows (id int PRIMARY KEY, note text)" \
    -c "CREATE PROCEDURE commit_then_fail(x text) LANGUAGE plpgsql AS \$\$BEGIN INSERT INTO proc_rows VALUES (1, x); COMMIT; RAISE EXCEPTION 'boom'; END\$\$"
# Under standard_conforming_strings = off, \' escapes the quote: the server parses the CALL,
# libpg_query (standard strings) does not.
client -c "SET standard_conforming_strings = off" -c "CALL commit_then_fail('it\\'s')"
assert_eq "1|0" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM proc_rows")|$(psql_new "$DB" -tA -c "SELECT count(*) FROM proc_rows")" \
    "(old committed the procedure's row; new did not run it)"
assert_eq "diverged" "$(it_status secondary_state)" "a failed text pgdual cannot parse, which ran, takes new out of in_sync"
it_proxy_stop

# --- mirror = off skips the secondary: out of sync; a primary switch then needs FORCE (finding 6) -
rm -f "$IT_TMP/pgdual.state"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
psql_admin "SET mirror = off FORCE" >/dev/null
psql_proxy "$DB" -q -c "INSERT INTO t VALUES (500)"
psql_admin "SET mirror = on" >/dev/null
assert_eq "0" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM t WHERE id = 500")" "(the write skipped new)"
assert_eq "diverged" "$(it_status secondary_state)" "a write skipped under mirror = off takes new out of in_sync"
assert_fails "SET primary = new is refused while new is not in_sync" -- psql_admin "SET primary = new"
assert_contains "$IT_LAST_OUT" "secondary_state is diverged" "the refusal says why"
assert_eq "old" "$(it_status primary)" "the primary did not change"
assert_ok "SET primary = new FORCE switches anyway" -- psql_admin "SET primary = new FORCE"
assert_fails "ROLLBACK CUTOVER back to an out-of-sync old is refused" -- psql_admin "ROLLBACK CUTOVER"
assert_ok "ROLLBACK CUTOVER FORCE" -- psql_admin "ROLLBACK CUTOVER FORCE"
assert_eq "old" "$(it_status primary)" "rolled back"
assert_ok "ROLLBACK CUTOVER with old already primary needs no FORCE" -- psql_admin "ROLLBACK CUTOVER"
it_proxy_stop

# --- pgdual's COMMIT of a wrapped write fails on old only: new applied it alone -----------------
rm -f "$IT_TMP/pgdual.state"
psql_new "$DB" -q -c "DROP TRIGGER refuse ON w"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
assert_fails "old refuses the INSERT at commit: the client's error" -- \
    psql_proxy "$DB" -c "INSERT INTO w VALUES (2)"
assert_eq "0|1" "$(psql_old "$DB" -tA -c "SELECT count(*) FROM w")|$(psql_new "$DB" -tA -c "SELECT count(*) FROM w")" \
    "(new applied it alone)"
assert_eq "diverged" "$(it_status secondary_state)" "a write new applied that old did not commit: diverged"
it_proxy_stop
