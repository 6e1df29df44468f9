#!/usr/bin/env bash
# tests/integration/it_pin_seqraise.sh: code pgdual cannot see into, and the sequences a verbatim
# write draws from on new.
# (A) a DO block, a CALL and a SELECT of a user function that insert rows whose default reads the
#     clock run again on new: counted (nondeterministic_writes_total), new out of in_sync, the
#     reason logged (before: new stored other timestamps, in_sync, nothing counted);
# (B) pinned inserts store old's ids on new without drawing from new's sequences; a DO block then
#     inserting into the same tables (serial, identity, a shared sequence) inside a transaction
#     with another write, all in one Query: pgdual raises new's sequences first, so new draws
#     old's ids and commits the transaction as old did (before: 23505 on new, the other write lost
#     there);
# (C) the same through the extended protocol (a prepared SELECT of a function that inserts), and
#     for a COPY filling a serial column;
# (D) in a transaction old has failed, nothing is raised (it would fail there): the session goes
#     on, ROLLBACK, and the next writes are identical on both;
# (E) the client's replies are old's alone (the raise's answers are not the client's);
# (F) inside a transaction block nothing is raised (a SET TRANSACTION must come first there; the
#     raise's locks and snapshot would last the block): the block's writes are new's as old's;
# (G) DDL that only stores a call of user code (a DEFAULT, a view) is not counted;
# (H) a DO block that COMMITs inside and then fails with a class-42 error is counted;
# (I) a unit with a pinned insert raises nothing for it: the session's next verbatim unit raises;
# (J) ALTER TABLE ... TYPE ... USING f(), ADD CONSTRAINT CHECK (f()) and EXECUTE p(f()) run user
#     code and are counted (review 15: silent after d1947bd); SELECT of a missing function is
#     refused at analysis and is not counted.
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
# One Query: the raise goes ahead of it, outside any transaction block on new.
psql_proxy "$DB" -q -c "BEGIN; INSERT INTO other VALUES (1);
DO \$\$ BEGIN
    INSERT INTO s (v) VALUES (10);
    INSERT INTO i (v) VALUES (10);
    INSERT INTO sh (v) VALUES (10);
END \$\$;
INSERT INTO other VALUES (2); COMMIT"
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

# --- F: inside a transaction block nothing is raised: the block is new's as old's ------------------
psql_proxy "$DB" -q -c "INSERT INTO s (v) VALUES (60)" # pinned
psql_proxy "$DB" -q -c "BEGIN" \
    -c "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; DO \$\$ BEGIN INSERT INTO other VALUES (60); END \$\$" \
    -c "INSERT INTO other VALUES (61)" -c "COMMIT"
same other "F: other (SET TRANSACTION still came first on new)"
assert_not_contains "$(cat "$PROXY_LOG")" "25001" "F: no 'must be called before any query' on new"
no_collision F

# --- G: DDL that only stores a call of user code runs nothing: not counted ---------------------------
it_status_mark
psql_proxy "$DB" -q -c "CREATE TABLE d2 (k int PRIMARY KEY, n int DEFAULT add_s(0))" \
    -c "CREATE VIEW vs AS SELECT add_s(1) AS x" -c "ALTER TABLE other ALTER COLUMN id SET DEFAULT add_s(2)" \
    -c "ALTER TABLE other ALTER COLUMN id DROP DEFAULT"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "G: DEFAULT, view, SET DEFAULT naming user code: nothing counted"

# --- H: a DO block that commits inside, then fails with a class-42 error: counted -------------------
it_status_mark
psql_proxy "$DB" -q -c "CREATE TABLE kept (id int PRIMARY KEY)"
out=$(raw "Q DO \$\$ BEGIN INSERT INTO kept VALUES (1); COMMIT; EXECUTE 'SELECT * FROM no_such_table'; END \$\$ ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_contains "$out" "E 42P01" "H: the DO block failed with 42P01 after its COMMIT"
assert_eq 1 "$(psql_old "$DB" -tA -c "SELECT count(*) FROM kept")" "H: old kept the committed row"
assert_delta nondeterministic_writes_total -ge 1 "H: counted (new may lack what it committed)"
assert_eq diverged "$(it_status secondary_state)" "H: new out of in_sync"

# --- I: a pinned insert and a DO block in one Query: the next such unit raises again ---------------
# One session: a verbatim unit (raised, level), then one whose pinned insert comes after its own
# raise, then a verbatim insert into s, which must raise again.
out=$(raw "Q DO \$\$ BEGIN INSERT INTO s (v) VALUES (70); END \$\$ ;; SEND ;; WAIT Z ;; Q INSERT INTO s (v) VALUES (71); DO \$\$ BEGIN INSERT INTO other VALUES (71); END \$\$ ;; SEND ;; WAIT Z ;; Q DO \$\$ BEGIN INSERT INTO s (v) VALUES (72); END \$\$ ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 3 "$(grep -c '^Z I' <<<"$out")" "I: the three Queries answered"
same s "I: s"
no_collision I

# --- J: DDL and EXECUTE that run user code on the table's rows are counted; a call refused at
# analysis ran nothing and is not ------------------------------------------------------------
psql_proxy "$DB" -q -c "CREATE TABLE j1 (k int PRIMARY KEY, v int)" -c "INSERT INTO j1 VALUES (1, 1), (2, 2)" \
    -c "CREATE TABLE j2 (k int PRIMARY KEY, v int)" -c "INSERT INTO j2 VALUES (1, 1)"
n=0
for stmt in "ALTER TABLE j1 ALTER COLUMN v TYPE bigint USING add_s(v)" \
    "ALTER TABLE j2 ADD CONSTRAINT ck CHECK (add_s(v) > 0)" \
    "PREPARE jins(int) AS INSERT INTO other VALUES (\$1); EXECUTE jins(add_s(1) + 1000)"; do
    n=$((n + 1))
    it_status_mark
    psql_proxy "$DB" -q -c "$stmt"
    assert_delta nondeterministic_writes_total -ge 1 "J$n: '$stmt' counted"
done
it_status_mark
assert_fails "J: a missing function is refused" -- psql_proxy "$DB" -q -c "SELECT no_such_fn(1)"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "J: a call refused at analysis is not counted"

it_proxy_stop
it_check_sanitizer_log
it_pass
