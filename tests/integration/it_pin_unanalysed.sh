#!/usr/bin/env bash
# tests/integration/it_pin_unanalysed.sh: prepared statements pgdual could not analyse, or whose
# analysis it forgot, are never silent. (A) A Parse pipelined behind an unanswered DDL is prepared
# while the analysis is off (its table's defaults were never looked up): each Execute of it that
# makes up values is counted, unless pinned. (B) An INSERT counted for its trigger is still counted
# after code pgdual cannot see into (a DO block) made it forget the session's statement names.
# (C) Such statements, closed by the client, leave pgdual's table of names.
# Each check: old and new hold the same rows, or the write was counted (found by a review: both
# were silent, new's clock_timestamp() stored).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_unanalysed
it_createdb "$DB"
# A small statement limit: section C closes what it prepares, and must never reach it.
it_proxy_start pgdual.max_session_statements=16
raw() { it_rawpg "$DB" "$1"; }
rows() { "$1" "$DB" -tA -c "SELECT md5(coalesce(string_agg(w_::text, ',' ORDER BY w_::text), '')) FROM $2 w_"; }
# never_silent TABLE MSG: the table is the same on both sides, or a nondeterministic write was
# counted since the mark.
never_silent() {
    local d
    d=$(it_status_delta nondeterministic_writes_total)
    if [[ "$(rows psql_old "$1")" == "$(rows psql_new "$1")" ]]; then
        it_pass "$2 (identical on old and new; counted +$d)"
    elif [[ "$d" =~ ^[0-9]+$ ]] && ((d > 0)); then
        it_pass "$2 (rows differ, counted +$d)"
        local list
        list=$(it_status reconcile_tables)
        if [[ "$list" == "*" || "$list" == *"$DB:public.$1"* ]]; then
            it_pass "$1 is on the reconciliation list ($list)"
        else
            it_failed "$1 is not on the reconciliation list: $list"
        fi
    else
        it_failed "$2: $1 differs on old and new and nothing was counted (+$d)"
    fi
}

psql_proxy "$DB" -q -c "CREATE TABLE ck (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())"
psql_proxy "$DB" -q -c "CREATE TABLE tg (id int PRIMARY KEY, at timestamptz)" -c "
    CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS
        \$\$BEGIN NEW.at := clock_timestamp(); RETURN NEW; END\$\$;
    CREATE TRIGGER tg_stamp BEFORE INSERT ON tg FOR EACH ROW EXECUTE FUNCTION stamp();"

# --- A: prepared behind an unanswered DDL, in one write ------------------------------------------
it_status_mark
out=$(raw "Q CREATE TABLE IF NOT EXISTS zz (i int) ;; PN ins INSERT INTO ck (id) VALUES (\$1) ;; S ;; SEND ;; WAIT Z 2 ;; BN ins 901 ;; E ;; S ;; SEND ;; WAIT Z ;; BN ins 902 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "both Executes inserted a row"
never_silent ck "a statement prepared while the analysis was off"

# --- B: counted for its trigger, then names forgotten by a DO block ------------------------------
it_status_mark
out=$(raw "PN tins INSERT INTO tg (id) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; BN tins 1 ;; E ;; S ;; SEND ;; WAIT Z ;; Q DO \$\$BEGIN END\$\$ ;; SEND ;; WAIT Z ;; BN tins 2 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "both INSERTs ran"
assert_delta nondeterministic_writes_total -ge 2 "the trigger table's INSERT is counted before and after a DO block"
never_silent tg "a counted statement whose name pgdual forgot"

# --- D: SQL PREPARE of a write that makes up values, then EXECUTEs by SQL and by Bind -----------
# The PREPARE is counted, and so is each EXECUTE (a reconciliation between them would otherwise
# leave a later EXECUTE's row different on new, unseen).
it_status_mark
psql_proxy "$DB" -q -c "PREPARE p AS INSERT INTO ck (id) VALUES (\$1)" -c "EXECUTE p(501)" \
    -c "EXECUTE p(502)" -c "DEALLOCATE p"
assert_delta nondeterministic_writes_total -ge 3 "SQL PREPARE and each SQL EXECUTE of it counted"
it_status_mark
out=$(raw "Q PREPARE q AS INSERT INTO ck (id) VALUES (\$1) ;; SEND ;; WAIT Z ;; BN q 503 ;; E ;; S ;; SEND ;; WAIT Z ;; BN q 504 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "both Binds of the SQL-prepared statement inserted"
assert_delta nondeterministic_writes_total -ge 3 "SQL PREPARE and each Bind/Execute of it counted"

# --- E: SQL PREPARE / EXECUTE sent through Parse/Bind/Execute, and the names around them --------
# E1 (PgJDBC sends every statement so): each EXECUTE is counted, not only the PREPARE (it was the
# PREPARE alone: later rows different on new, unseen).
it_status_mark
out=$(raw "P PREPARE jp(int) AS INSERT INTO ck (id) VALUES (\$1) ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; P EXECUTE jp(601) ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; P EXECUTE jp(602) ;; B ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "E1: both EXECUTEs inserted"
assert_eq 3 "$(it_status_delta nondeterministic_writes_total)" "E1: the PREPARE and each EXECUTE counted"
# E2: a PREPARE counted, then DEALLOCATE and PREPARE again of a deterministic write in the same
# Query: the second's EXECUTE is not counted (reasons go by statement, not by name).
psql_proxy "$DB" -q -c "CREATE TABLE plain (id int PRIMARY KEY)"
it_status_mark
out=$(raw "Q PREPARE rx(int) AS INSERT INTO ck (id) VALUES (\$1); DEALLOCATE rx; PREPARE rx(int) AS INSERT INTO plain (id) VALUES (\$1) ;; SEND ;; WAIT Z ;; Q EXECUTE rx(1) ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_contains "$out" "C INSERT 0 1" "E2: the EXECUTE inserted"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "E2: only the Query with the first PREPARE counted"
assert_eq "$(rows psql_old plain)" "$(rows psql_new plain)" "E2: plain identical"
# E4: SQL EXECUTE in a Query of a statement pgdual Parsed with its RETURNING list: pinned like
# its Bind/Execute, the client sees no column of pgdual's (it did: an extra RowDescription and
# DataRow, and new drew its own id, uncounted). The same EXECUTE sent as a Parse's text is
# counted (decided at that Parse; its reply still carries pgdual's columns: a known gap).
psql_proxy "$DB" -q -c "CREATE TABLE ser (id serial PRIMARY KEY, n int)"
it_status_mark
out=$(raw "DETAIL ;; PN sp INSERT INTO ser (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; Q EXECUTE sp(1) ;; SEND ;; WAIT Z ;; BN sp 2 ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "E4: two INSERTs"
assert_eq 0 "$(grep -c '^[TD]\( \|$\)' <<<"$out" || true)" "E4: no RowDescription or DataRow reached the client"
assert_eq 2 "$(it_status_delta pinned_writes_total)" "E4: both pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "E4: nothing counted"
assert_eq "$(rows psql_old ser)" "$(rows psql_new ser)" "E4: ser identical (old's ids on new)"
it_status_mark
out=$(raw "PN sp INSERT INTO ser (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; P EXECUTE sp(3) ;; B ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_contains "$out" "C INSERT 0 1" "E4: the EXECUTE sent as a Parse's text inserted"
assert_eq 1 "$(it_status_delta nondeterministic_writes_total)" "E4: ...counted"

# --- F: a Parse declaring its parameter types (PgJDBC and Npgsql always do) -----------------------
# Its text was never analysed (the last byte of a Parse is a type OID's, not a NUL): nothing was
# pinned or counted, and new stored its own clock_timestamp() and id (review 12e).
psql_proxy "$DB" -q -c "CREATE TABLE typed (id serial PRIMARY KEY, n int, at timestamptz DEFAULT clock_timestamp())"
it_status_mark
out=$(raw "PT ti 23 INSERT INTO typed (n) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; BN ti 1 ;; E ;; S ;; SEND ;; WAIT Z ;; BN ti 2 ;; E ;; S ;; SEND ;; WAIT Z ;; PT tu 23,25 UPDATE typed SET at = now() WHERE n = \$1 AND \$2 = 'x' ;; BN tu 1 x ;; E ;; S ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "F: both INSERTs ran"
assert_contains "$out" "C UPDATE 1" "F: the UPDATE ran"
assert_eq 3 "$(it_status_delta pinned_writes_total)" "F: all three pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "F: nothing counted"
assert_eq "$(rows psql_old typed)" "$(rows psql_new typed)" "F: typed identical (ids and clock values)"

# G: PgJDBC with autocommit off sends BEGIN in the batch of the block's first statement: the
# statement parsed behind it is analysed and pinned (a BEGIN must not count as a transaction end).
it_status_mark
out=$(raw "P BEGIN ;; B ;; E ;; PT tg1 23 INSERT INTO typed (n) VALUES (\$1) ;; BN tg1 3 ;; E ;; S ;; SEND ;; WAIT Z ;; P SAVEPOINT g ;; B ;; E ;; BN tg1 4 ;; E ;; S ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "G: both INSERTs ran"
assert_eq 2 "$(it_status_delta pinned_writes_total)" "G: both pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "G: nothing counted"
assert_eq "$(rows psql_old typed)" "$(rows psql_new typed)" "G: typed identical"

# H: pipelines (psycopg3, libpq): the next transaction goes out before the COMMIT is answered.
# Nothing is counted for them (an extended COMMIT taken as a transaction end turned the analysis
# off behind it: reads counted, pinned inserts counted; review of e91ad24).
it_status_mark
out=$(raw "P BEGIN ;; B ;; E ;; P SELECT 1 ;; B ;; E ;; P COMMIT ;; B ;; E ;; S ;; P BEGIN ;; B ;; E ;; P SELECT 2 ;; B ;; E ;; P COMMIT ;; B ;; E ;; S ;; SEND ;; WAIT Z 2") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C COMMIT' <<<"$out")" "H1: both read-only transactions committed"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "H1: nothing counted"
it_status_mark
out=$(raw "P BEGIN ;; B ;; E ;; PT h1 23 INSERT INTO typed (n) VALUES (\$1) ;; BN h1 11 ;; E ;; P COMMIT ;; B ;; E ;; S ;; P BEGIN ;; B ;; E ;; BN h1 12 ;; E ;; P COMMIT ;; B ;; E ;; S ;; SEND ;; WAIT Z 2") ||
    it_failed "rawpg: $out"
assert_eq 2 "$(grep -c '^C INSERT 0 1' <<<"$out")" "H2: both pipelined INSERTs ran"
assert_eq 2 "$(it_status_delta pinned_writes_total)" "H2: both pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "H2: nothing counted"
assert_eq "$(rows psql_old typed)" "$(rows psql_new typed)" "H2: typed identical"
# H3: ROLLBACK TO and an INSERT in one batch: the INSERT is pinned.
it_status_mark
out=$(raw "Q BEGIN ;; SEND ;; WAIT Z ;; Q SAVEPOINT h ;; SEND ;; WAIT Z ;; P ROLLBACK TO SAVEPOINT h ;; B ;; E ;; PT h3 23 INSERT INTO typed (n) VALUES (\$1) ;; BN h3 13 ;; E ;; S ;; SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z") ||
    it_failed "rawpg: $out"
assert_contains "$out" "C COMMIT" "H3: committed"
assert_eq 1 "$(it_status_delta pinned_writes_total)" "H3: pinned"
assert_eq 0 "$(it_status_delta nondeterministic_writes_total)" "H3: nothing counted"
assert_eq "$(rows psql_old typed)" "$(rows psql_new typed)" "H3: typed identical"

# --- C: counted statements prepared and closed again and again ------------------------------
# A statement with a counted reason is dropped from pgdual's table of names when the client drops
# it with Close (a review found such entries kept for good: the 17th ended the session at
# max_session_statements = 16, and a secondary connection could never be made equal again).
script=""
for i in $(seq 1 40); do
    script+="PN s$i INSERT INTO tg (id) VALUES (\$1) ;; S ;; SEND ;; WAIT Z ;; BN s$i $((100 + i)) ;; E ;; CS s$i ;; S ;; SEND ;; WAIT Z ;; "
done
out=$(raw "${script% ;; }") || it_failed "rawpg: $out"
assert_eq 40 "$(grep -c '^C INSERT 0 1' <<<"$out")" "40 counted statements prepared, run and closed in one session"
assert_not_contains "$(cat "$PROXY_LOG")" "too many prepared statements" "the session never reached max_session_statements"

it_proxy_stop
