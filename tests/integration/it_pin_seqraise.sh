#!/usr/bin/env bash
# tests/integration/it_pin_seqraise.sh: code pgdual cannot see into, and the sequences a verbatim
# write draws from on new.
# (A) a DO block, a CALL and a SELECT of a user function that insert rows whose default reads the
#     clock run again on new: counted (nondeterministic_writes_total), new out of in_sync, the
#     reason logged (before: new stored other timestamps, in_sync, nothing counted);
# (B) pinned inserts store old's ids on new without drawing from new's sequences; a DO block then
#     inserting into the same tables (serial, identity, a shared sequence) inside a transaction
#     with another write: pgdual raises new's sequences first, so new draws old's ids and commits
#     the transaction as old did (before: 23505 on new, the other write lost there);
# (C) the same through the extended protocol (a prepared SELECT of a function that inserts), and
#     for a COPY filling a serial column;
# (D) in a transaction old has failed, nothing is raised (it would fail there): the session goes
#     on, ROLLBACK, and the next writes are identical on both;
# (E) the client's replies are old's alone (the raise's answers are not the client's).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_seqraise
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
raw() { it_rawpg "$DB" "$1"; }
same() { it_same "$DB" "$@"; }
no_collision() { # MESSAGE: nothing failed on new alone since the start
    assert_not_contains "$(cat "$PROXY_LOG")" "23505" "$1: no unique violation on new"
    assert_not_contains "$(cat "$PROXY_LOG")" "error_mismatch" "$1: no error on one side only"
}

psql_proxy "$DB" -q <<'SQL'
CREATE TABLE stamped (id serial PRIMARY KEY, v int, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION add_stamped(x int) RETURNS void LANGUAGE sql AS
    'INSERT INTO stamped (v) VALUES (x)';
CREATE PROCEDURE put_stamped(x int) LANGUAGE sql AS 'INSERT INTO stamped (v) VALUES (x)';
CREATE TABLE s (id serial PRIMARY KEY, v int);
CREATE TABLE i (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int);
CREATE SEQUENCE shared;
CREATE TABLE sh (id int DEFAULT nextval('shared') UNIQUE, v int);
CREATE TABLE other (id int PRIMARY KEY);
CREATE FUNCTION add_s(x int) RETURNS int LANGUAGE sql AS
    'INSERT INTO s (v) VALUES (x) RETURNING id';
SQL

# --- A: user code is counted --------------------------------------------------------------------
n=0
for call in "DO \$\$ BEGIN INSERT INTO stamped (v) VALUES (1); END \$\$" "CALL put_stamped(2)" \
    "SELECT add_stamped(3)"; do
    n=$((n + 1))
    it_status_mark
    psql_proxy "$DB" -q -c "$call" >/dev/null
    assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "A$n: '$call' counted"
    assert_eq diverged "$(it_status secondary_state)" "A$n: new out of in_sync"
done
assert_contains "$(cat "$PROXY_LOG")" "it runs code pgdual cannot see into" "A: the log says why"
assert_eq 3 "$(psql_old "$DB" -tA -c "SELECT count(*) FROM stamped")" "A: old has the three rows"

# --- B: pinned inserts, then a DO block drawing from the same sequences -------------------------
for k in 1 2 3; do # each its own session: the raise covers other sessions' pinned ids
    psql_proxy "$DB" -q -c "INSERT INTO s (v) VALUES ($k)" -c "INSERT INTO i (v) VALUES ($k)" \
        -c "INSERT INTO sh (v) VALUES ($k)"
done
assert_eq "3|3" "$(psql_old "$DB" -tA -c "SELECT max(id) FROM s")|$(psql_new "$DB" -tA -c "SELECT max(id) FROM s")" \
    "B: new holds old's ids"
assert_eq "f" "$(psql_new "$DB" -tA -c "SELECT is_called FROM s_id_seq")" \
    "B: new's sequence was not drawn by pinned inserts"
it_status_mark
psql_proxy "$DB" -q <<'SQL'
BEGIN;
INSERT INTO other VALUES (1);
DO $$ BEGIN
    INSERT INTO s (v) VALUES (10);
    INSERT INTO i (v) VALUES (10);
    INSERT INTO sh (v) VALUES (10);
END $$;
INSERT INTO other VALUES (2);
COMMIT;
SQL
assert_eq "1,2" "$(psql_new "$DB" -tA -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM other")" \
    "B: new committed the transaction"
for t in s i sh other; do same "$t" "B: $t"; done
assert_eq 4 "$(psql_new "$DB" -tA -c "SELECT id FROM s WHERE v = 10")" "B: new drew old's id"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "B: the DO block counted, once"
no_collision B

# --- C: the extended protocol, and COPY -------------------------------------------------------------
psql_proxy "$DB" -q -c "INSERT INTO s (v) VALUES (20)" # pinned: id 5 on both, new's sequence at 4
out=$(raw "PN f SELECT add_s(\$1) ;; BN f 21 ;; E ;; S ;; SEND ;; WAIT Z") || it_failed "rawpg: $out"
assert_contains "$out" "C SELECT 1" "C: the function ran"
assert_eq 6 "$(psql_new "$DB" -tA -c "SELECT id FROM s WHERE v = 21")" "C: new drew old's id"
psql_proxy "$DB" -q -c "INSERT INTO s (v) VALUES (22)" # pinned: 7
printf '30\n31\n' | psql_proxy "$DB" -q -c "COPY s (v) FROM STDIN"
same s "C: s after a function through the extended protocol and a COPY"
assert_eq "8,9" "$(psql_new "$DB" -tA -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM s WHERE v >= 30")" \
    "C: the COPY drew old's ids on new"
no_collision C

# --- D: a failed transaction: nothing raised, the session goes on -------------------------------
psql_proxy "$DB" -q -c "INSERT INTO s (v) VALUES (40)" # pinned
out=$(raw "Q BEGIN ;; SEND ;; WAIT Z ;; Q SELECT 1/0 ;; SEND ;; WAIT Z ;; Q DO \$\$ BEGIN INSERT INTO s (v) VALUES (41); END \$\$ ;; SEND ;; WAIT Z ;; Q ROLLBACK ;; SEND ;; WAIT Z ;; Q INSERT INTO s (v) VALUES (42) ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_contains "$out" "E 25P02" "D: the DO block is refused in the failed transaction"
assert_contains "$out" "C INSERT 0 1" "D: the session went on"
same s "D: s"
no_collision D

# --- E: the client sees old's replies alone ------------------------------------------------------
psql_proxy "$DB" -q -c "INSERT INTO s (v) VALUES (50)" # pinned: the next verbatim write raises
script="Q DO \$\$ BEGIN INSERT INTO s (v) VALUES (51); END \$\$ ;; SEND ;; WAIT Z ;; PN g SELECT add_s(\$1) ;; BN g 52 ;; E ;; S ;; SEND ;; WAIT Z"
psql_proxy "$DB" -q -c "INSERT INTO s (v) VALUES (53)"
out=$(raw "$script") || it_failed "rawpg: $out"
assert_eq "$(printf 'C DO\nZ I\n1\n2\nD\nC SELECT 1\nZ I')" \
    "$(sed -E 's/^([12]).*/\1/; s/^D .*/D/' <<<"$out")" "E: DO, then ParseComplete, BindComplete, the row, SELECT 1"
same s "E: s"
no_collision E

it_proxy_stop
it_check_sanitizer_log
it_pass
