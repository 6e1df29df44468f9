#!/usr/bin/env bash
# tests/integration/it_sequences.sh: exact message sequences (tests/harness/rawpg.py) and what
# reaches each side: a wrapped multi-statement write that fails after drawing a sequence value
# leaves the sequences equal; a held reply over 256 KiB gives the client its COMMIT only once new
# committed; an extended-protocol COPY old rejects in a failed transaction does not hang; COPY
# data inside an extended batch and a COPY pgdual cannot see (standard_conforming_strings = off)
# are refused cleanly; a batch without Sync that wrote on old, then a client that vanishes, takes
# new out of in_sync; a reload cannot switch the primary past the sync guard.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_sequences
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
raw() { it_rawpg "$DB" "$1"; }
both() { echo "$(psql_old "$DB" -tA -c "$1")|$(psql_new "$DB" -tA -c "$1")"; }

psql_proxy "$DB" -q -c "CREATE TABLE t2 (id serial PRIMARY KEY, v int)" \
    -c "CREATE TABLE stock (id int PRIMARY KEY, qty int CHECK (qty >= 0))" \
    -c "INSERT INTO stock VALUES (1, 0)" \
    -c "CREATE TABLE big (id int PRIMARY KEY, pad text)"

# --- a wrapped write: INSERT (draws id 1) then a failing UPDATE in one Query -----------------
assert_fails "the Query fails at its UPDATE" -- \
    psql_proxy "$DB" -c "INSERT INTO t2 (v) VALUES (1); UPDATE stock SET qty = qty - 1 WHERE id = 1"
psql_proxy "$DB" -q -c "INSERT INTO t2 (v) VALUES (2)"
# Pinned: new stores old's ids and draws none of its own; the id old lost to the rolled-back
# INSERT is simply never used on new either.
assert_eq "2|1" "$(both "SELECT last_value FROM t2_id_seq")" "new drew no id of its own (pinned)"
assert_eq "$(psql_old "$DB" -tA -c "SELECT id || ':' || v FROM t2")" \
    "$(psql_new "$DB" -tA -c "SELECT id || ':' || v FROM t2")" "the next row has the same id on both"

# --- a held reply over 256 KiB: its COMMIT reaches the client only once new committed --------
psql_new "$DB" -q <<'SQL'
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END$$;
CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON big DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW WHEN (NEW.id = 1) EXECUTE FUNCTION slow_commit();
SQL
out=$(raw "Q BEGIN ;; SEND ;; WAIT Z ;; Q INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g RETURNING *; COMMIT ;; SEND ;; WAIT C 2 ;; CLOSE")
assert_contains "$out" "C COMMIT" "the client got its COMMIT"
assert_eq "5000" "$(psql_new "$DB" -tA -c "SELECT count(*) FROM big")" \
    "when the COMMIT reached the client, new had committed the 5,000 rows"
psql_new "$DB" -q -c "DROP TRIGGER slow ON big"

# --- an extended-protocol COPY old rejects in a failed transaction: no hang -----------------
out=$(raw "Q BEGIN ;; SEND ;; WAIT Z ;; Q SELECT 1/0 ;; SEND ;; WAIT Z ;; P COPY t2 (v) FROM STDIN ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; Q ROLLBACK ;; SEND ;; WAIT Z") ||
    it_failed "the session hung: $out"
assert_contains "$out" "E 25P02" "old rejected the COPY in the failed transaction"
assert_contains "$out" "C ROLLBACK" "and the ROLLBACK after it was answered"

# --- COPY data inside an extended batch (before its Sync): refused, not guessed -------------
out=$(raw "P COPY t2 (v) FROM STDIN ;; B ;; E ;; d 10 ;; c ;; S ;; SEND ;; WAIT E") || true
assert_contains "$out" "E 0A000" "COPY data before the batch's Sync: 0A000"
assert_eq "1" "$(psql_proxy "$DB" -tA -c "SELECT 1")" "pgdual serves other sessions"

# --- a COPY pgdual's parser cannot see (standard_conforming_strings = off): refused ----------
assert_fails "a Query naming COPY is refused while standard_conforming_strings is off" -- \
    timeout 20 psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d "$DB" \
    -c "SET standard_conforming_strings = off" -c "SELECT 'a\\''; COPY t2 (v) FROM STDIN; --'"
assert_contains "$IT_LAST_OUT" "standard_conforming_strings" "the error says why"
assert_eq "1|1" "$(both "SELECT count(*) FROM t2")" "nothing was copied on either side"

assert_eq "in_sync" "$(it_status secondary_state)" "none of these took new out of in_sync"

# --- a batch without Sync that wrote on old (Flush), then the client vanishes ----------------
raw "P INSERT INTO t2 (v) VALUES (9) ;; B ;; E ;; H ;; SEND ;; WAIT C ;; CLOSE" >/dev/null
if it_wait_for 10 bash -c "[[ \$(psql -X -tA -h 127.0.0.1 -p $PROXY_PORT -U admin -d pgdual -c 'SHOW STATUS' | grep '^secondary_state|') == 'secondary_state|diverged' ]]"; then
    it_pass "an INSERT old ran in a batch the client never synced: new leaves in_sync"
else
    it_failed "secondary_state still $(it_status secondary_state) after an unsynced INSERT on old"
fi

# --- a reload cannot switch the primary past the sync guard ---------------------------------
sed -i 's/^primary = old$/primary = new/' "$PROXY_INI"
kill -HUP "$PROXY_PID"
it_wait_for 10 grep -q "primary = new in the config file not applied" "$PROXY_LOG" ||
    it_failed "no warning about the refused primary switch in the log"
assert_eq "old" "$(it_status primary)" "the primary stays old while new is diverged"
it_proxy_stop
