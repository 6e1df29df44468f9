#!/usr/bin/env bash
# tests/integration/it_pin_cte_ext5.sh: data-modifying WITH queries through the extended
# protocol, review 12e against the third design, message by message (rawpg.py), each script run
# through pgdual and against old alone (database REF) and compared:
#  jdbc:   PgJDBC with autocommit off: BEGIN (Parse/Bind/Execute) in the batch of each block's
#          first statement, the Parse declaring its parameter types: every WITH write pinned;
#  forget: a Query pipelined behind a write makes pgdual forget every statement's class: a WITH
#          statement's is kept, its Bind gets pgdual's statement (pinned); a DEALLOCATE pgdual
#          could not read meanwhile: the Bind fails as on old alone (the primary checks first);
#  leak:   pgdual's statements go with the client's: SQL DEALLOCATE of the name (psycopg3's cache
#          eviction), in a Query or through Parse/Bind/Execute, a Close after the classes were
#          forgotten: none left behind once the client's next Parse is through;
#  switch: a Close while new is primary of a statement pgdual made on old: closed on old once it
#          is primary again;
#  rollback: a ROLLBACK pipelined ahead of a WITH write's Bind: pinned when pgdual's table was
#          made outside the block, counted (no hang, no 42P01) when made inside it;
#  notice: the server's notice about the client's text comes once, as from old alone;
#  clash:  the client Parses and Binds a statement named "pgdual.cte.1": as on old alone (WITH
#          writes are counted from then on: last, new is diverged after it).
# shellcheck disable=SC2016 # $1 in single quotes are SQL parameters
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_pin_cte_ext5
REF=${DB}_ref
RAWPG="$IT_HARNESS_DIR/rawpg.py"
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
same() { it_same "$DB" "$@"; }
as_ref() { it_as_ref "$REF" "$DB" "$@"; }
raw() { timeout 30 python3 "$RAWPG" "$PROXY_PORT" "$DB" "$1"; }
ref() { timeout 30 python3 "$RAWPG" "$OLD_PORT" "$REF" "$1"; }
SETUP_SQL="
CREATE TABLE j (id serial PRIMARY KEY, n int);
CREATE TABLE f (id serial PRIMARY KEY, n int);
CREATE TABLE side (i int);
CREATE TABLE k (id serial PRIMARY KEY, n int);
CREATE TABLE kc (id serial PRIMARY KEY, n int);
CREATE TABLE rb (id serial PRIMARY KEY, n int);
CREATE TABLE llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll (id serial PRIMARY KEY, n int);"
psql_proxy "$DB" -q -c "$SETUP_SQL"
psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF" -c "CREATE DATABASE $REF"
psql_old "$REF" -q -c "$SETUP_SQL"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync before the WITH writes"

# ---- jdbc: PgJDBC, autocommit off (review 12e finding 3) -----------------------------------------
# [BEGIN; Parse S_1 (types declared); Bind; Describe; Execute; Sync], COMMIT in a batch of its own,
# then the same without the Parse; then BEGIN and another statement before the Bind.
INSJ='WITH w AS (INSERT INTO j (n) VALUES ($1) RETURNING id, n) SELECT id, n FROM w'
SJ="DETAIL ;; P BEGIN ;; B ;; E ;; PT S_1 23 $INSJ ;; BN S_1 0 ;; D P ;; E ;; S ;; SEND ;; WAIT Z ;; \
P COMMIT ;; B ;; E ;; S ;; SEND ;; WAIT Z"
for i in 1 2; do
    SJ="$SJ ;; P BEGIN ;; B ;; E ;; BN S_1 $i ;; D P ;; E ;; S ;; SEND ;; WAIT Z ;; \
P COMMIT ;; B ;; E ;; S ;; SEND ;; WAIT Z"
done
SJ="$SJ ;; P BEGIN ;; B ;; E ;; P SELECT 1 ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; BN S_1 10 ;; E ;; S ;; \
SEND ;; WAIT Z ;; P COMMIT ;; B ;; E ;; S ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SJ") || it_failed "jdbc via pgdual: $via"
old=$(ref "$SJ") || it_failed "jdbc on old: $old"
assert_eq "$old" "$via" "PgJDBC autocommit off: every message as old alone's"
assert_delta nondeterministic_writes_total -eq 0 "...nothing counted"
assert_delta pinned_writes_total -eq 4 "...all four WITH writes pinned"
assert_eq "in_sync" "$(it_status secondary_state)" "...new stays in_sync"
same j "j identical on old and new"
as_ref j "...j on old as old alone's"

# ---- forget: the classes forgotten, a WITH statement's kept, checked at its Bind -----------------
# A Parse behind a write in its batch is not read (the write may change how the server lexes it):
# each Execute of it makes pgdual forget every statement's class. The WITH statement's class is
# kept; its Bind gets pgdual's statement behind a Describe of the client's. A DEALLOCATE parsed so:
# the client's Bind fails on old alone (26000), and so must pgdual's.
INSF='WITH w AS (INSERT INTO f (n) VALUES ($1) RETURNING id, n) SELECT id, n FROM w'
SF="DETAIL ;; PN s $INSF ;; S ;; SEND ;; WAIT Z ;; BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; \
P INSERT INTO side VALUES (1) ;; B ;; E ;; PN q SELECT 1 ;; BN q ;; E ;; S ;; SEND ;; WAIT Z ;; \
BN s 2 ;; D P ;; E ;; S ;; SEND ;; WAIT Z ;; BN q ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 3 ;; E ;; S ;; \
SEND ;; WAIT Z ;; P INSERT INTO side VALUES (2) ;; B ;; E ;; PN d DEALLOCATE s ;; BN d ;; E ;; S ;; \
SEND ;; WAIT Z ;; BN s 4 ;; E ;; S ;; SEND ;; WAIT Z ;; Q SELECT count(*) FROM f ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SF") || it_failed "forget via pgdual: $via"
old=$(ref "$SF") || it_failed "forget on old: $old"
assert_eq "$old" "$via" "classes forgotten, a DEALLOCATE pgdual could not read: as old alone"
assert_contains "$via" "E 26000" "...the Bind after the DEALLOCATE fails"
assert_delta nondeterministic_writes_total -eq 0 "...nothing counted"
assert_delta pinned_writes_total -eq 3 "...the three WITH writes pinned (two after the forget)"
assert_eq "in_sync" "$(it_status secondary_state)" "...new stays in_sync"
same f "f identical on old and new"
as_ref f "...f on old as old alone's"

# ---- leak: pgdual's statements after DEALLOCATE, forgets, Close (review 12e finding 5) -----------
INSK='WITH w AS (INSERT INTO k (n) VALUES ($1) RETURNING id, n) SELECT id, n FROM w'
OWN="Q SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgdual.cte.%'"
SK="DETAIL"
for i in 0 1 2; do
    SK="$SK ;; PN _pg3_$i $INSK ;; BN _pg3_$i $i ;; E ;; S ;; SEND ;; WAIT Z ;; Q DEALLOCATE _pg3_$i ;; SEND ;; WAIT Z"
done
for i in 10 11; do
    SK="$SK ;; PN s $INSK ;; BN s $i ;; E ;; S ;; SEND ;; WAIT Z ;; Q DEALLOCATE s ;; SEND ;; WAIT Z"
done
SK="$SK ;; PN x SELECT 1 ;; S ;; SEND ;; WAIT Z ;; $OWN ;; SEND ;; WAIT Z"
SK="$SK ;; PN s2 $INSK ;; BN s2 20 ;; E ;; S ;; SEND ;; WAIT Z ;; Q INSERT INTO side VALUES (3) ;; \
Q SELECT 1 ;; SEND ;; WAIT Z 2 ;; CS s2 ;; S ;; SEND ;; WAIT Z ;; $OWN ;; SEND ;; WAIT Z"
SK="$SK ;; PN s3 $INSK ;; BN s3 30 ;; E ;; S ;; SEND ;; WAIT Z ;; P DEALLOCATE s3 ;; B ;; E ;; S ;; \
SEND ;; WAIT Z ;; PN y SELECT 2 ;; S ;; SEND ;; WAIT Z ;; $OWN ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SK") || it_failed "leak via pgdual: $via"
old=$(ref "$SK") || it_failed "leak on old: $old"
assert_eq "$old" "$via" "DEALLOCATE, forgets, Close: every message (pgdual's statement counts too) as old alone's"
assert_eq "D 0
D 0
D 0" "$(grep '^D 0$' <<<"$via")" "...no statement of pgdual's left behind"
assert_delta nondeterministic_writes_total -eq 0 "...nothing counted"
assert_delta pinned_writes_total -eq 7 "...all seven WITH writes pinned"
same k "k identical on old and new"
as_ref k "...k on old as old alone's"

# ---- switch: a Close while new is primary of a statement pgdual made on old (finding 5) ----------
INSK2='WITH w AS (INSERT INTO k (n) VALUES ($1) RETURNING id) SELECT id FROM w'
raw "DETAIL ;; PN u $INSK2 ;; S ;; SEND ;; WAIT Z ;; BN u 50 ;; E ;; S ;; SEND ;; WAIT Z ;; \
PAUSE $IT_TMP/sw1 ;; CS u ;; S ;; SEND ;; WAIT Z ;; PAUSE $IT_TMP/sw2 ;; PN z SELECT 3 ;; S ;; SEND ;; \
WAIT Z ;; $OWN ;; SEND ;; WAIT Z" >"$IT_TMP/sw.out" 2>&1 &
sw_pid=$!
paused() { [[ $(grep -c '^PAUSE$' "$IT_TMP/$1") -ge $2 ]]; }
it_wait_for 20 paused sw.out 1 || it_failed "the session did not reach its first pause: $(cat "$IT_TMP/sw.out")"
assert_ok "SET primary = new" -- psql_admin "SET primary = new"
touch "$IT_TMP/sw1"
it_wait_for 20 paused sw.out 2 || it_failed "the session did not reach its second pause: $(cat "$IT_TMP/sw.out")"
assert_ok "SET primary = old FORCE" -- psql_admin "SET primary = old FORCE"
touch "$IT_TMP/sw2"
wait "$sw_pid" || it_failed "the switching session failed: $(cat "$IT_TMP/sw.out")"
assert_not_contains "$(cat "$IT_TMP/sw.out")" "E " "a Close after a switch: no error"
assert_eq "D 0" "$(tail -n 3 "$IT_TMP/sw.out" | grep '^D ')" \
    "...pgdual's statement on old closed once old is primary again"
assert_eq "in_sync" "$(it_status secondary_state)" "...new still in_sync"

# ---- rollback: a ROLLBACK pipelined ahead of a WITH write's Bind (review 12f finding 3) ----------
# Its Bind gets pgdual's statement only if pgdual's table cannot have gone with the block. Made
# and committed outside the block: pinned. Made inside it: the ROLLBACK drops it, so the write
# goes as the client's (counted); before, pgdual's Bind failed with 42P01, the read-back too, and
# the session hung (the client's reply was held for a read-back that had already ended).
INSR='WITH w AS (INSERT INTO rb (n) VALUES ($1) RETURNING id) SELECT id FROM w'
SR1="DETAIL ;; PN s1 $INSR ;; BN s1 0 ;; E ;; S ;; SEND ;; WAIT Z ;; Q BEGIN ;; SEND ;; WAIT Z ;; \
BN s1 1 ;; E ;; S ;; SEND ;; WAIT Z ;; P ROLLBACK ;; B ;; E ;; S ;; BN s1 2 ;; E ;; S ;; SEND ;; \
WAIT Z 2 ;; BN s1 3 ;; E ;; S ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SR1") || it_failed "rollback (table made outside the block) via pgdual: $via"
old=$(ref "$SR1") || it_failed "rollback on old: $old"
assert_eq "$old" "$via" "ROLLBACK pipelined, pgdual's table made outside the block: as old alone"
assert_delta nondeterministic_writes_total -eq 0 "...nothing counted"
assert_delta pinned_writes_total -eq 4 "...all four WITH writes pinned"
assert_eq "in_sync" "$(it_status secondary_state)" "...new stays in_sync"
same rb "rb identical on old and new"
as_ref rb "...rb on old as old alone's"
# A ROLLBACK TO earlier in the same batch, pgdual's table made outside the block: pinned.
SR3="DETAIL ;; PN s3 $INSR ;; BN s3 30 ;; E ;; S ;; SEND ;; WAIT Z ;; Q BEGIN ;; SEND ;; WAIT Z ;; \
P SAVEPOINT a ;; B ;; E ;; S ;; SEND ;; WAIT Z ;; P ROLLBACK TO a ;; B ;; E ;; BN s3 31 ;; E ;; S ;; \
SEND ;; WAIT Z ;; Q COMMIT ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SR3") || it_failed "rollback to (table made outside the block) via pgdual: $via"
old=$(ref "$SR3") || it_failed "rollback to on old: $old"
assert_eq "$old" "$via" "ROLLBACK TO in the batch, pgdual's table made outside the block: as old alone"
assert_delta nondeterministic_writes_total -eq 0 "...nothing counted"
assert_delta pinned_writes_total -eq 2 "...both WITH writes pinned"
same rb "rb identical on old and new"
# A COMMIT earlier in the same batch, pgdual's table made outside the block: pinned (review 12h).
SR4="DETAIL ;; PN s4 $INSR ;; BN s4 40 ;; E ;; S ;; SEND ;; WAIT Z ;; Q BEGIN ;; SEND ;; WAIT Z ;; \
P COMMIT ;; B ;; E ;; BN s4 41 ;; E ;; S ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SR4") || it_failed "commit (table made outside the block) via pgdual: $via"
old=$(ref "$SR4") || it_failed "commit on old: $old"
assert_eq "$old" "$via" "COMMIT in the batch, pgdual's table made outside the block: as old alone"
assert_delta nondeterministic_writes_total -eq 0 "...nothing counted"
assert_delta pinned_writes_total -eq 2 "...both WITH writes pinned"
same rb "rb identical on old and new"
SR2="DETAIL ;; Q BEGIN ;; SEND ;; WAIT Z ;; PN s1 $INSR ;; BN s1 11 ;; E ;; S ;; SEND ;; WAIT Z ;; \
P ROLLBACK ;; B ;; E ;; S ;; BN s1 12 ;; E ;; S ;; SEND ;; WAIT Z 2 ;; BN s1 13 ;; E ;; S ;; SEND ;; \
WAIT Z"
it_status_mark
via=$(raw "$SR2") || it_failed "rollback (table made in the block) via pgdual: $via"
old=$(ref "$SR2") || it_failed "rollback on old: $old"
assert_eq "$old" "$via" "ROLLBACK pipelined, pgdual's table made in the block: as old alone, no hang"
assert_not_contains "$via" "42P01" "...no error about pgdual's table"
assert_delta nondeterministic_writes_total -ge 1 "...the writes after it counted"
as_ref rb "...rb on old as old alone's"

# ---- notice: pgdual's own Parse says again what the client's said (review 12f finding 4) ---------
LONGT=$(printf 'l%.0s' {1..70}) # 70 bytes: the server keeps 63
INSN="WITH w AS (INSERT INTO $LONGT (n) VALUES (\$1) RETURNING id) SELECT id FROM w"
SNO="DETAIL ;; PN s $INSN ;; BN s 1 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 2 ;; E ;; S ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SNO") || it_failed "notice via pgdual: $via"
old=$(ref "$SNO") || it_failed "notice on old: $old"
assert_eq "$old" "$via" "an identifier the server truncates: its notice once, as old alone sends it"
assert_eq 1 "$(grep -c '^N 42622' <<<"$via")" "...one notice"
assert_delta pinned_writes_total -eq 2 "...both WITH writes pinned"

# ---- clash: the client names a statement as pgdual names its own (review 12e finding 7) ----------
INSC='WITH w AS (INSERT INTO kc (n) VALUES ($1) RETURNING id, n) SELECT id, n FROM w'
SN="DETAIL ;; PN s $INSC ;; BN s 40 ;; E ;; S ;; SEND ;; WAIT Z ;; PN pgdual.cte.1 SELECT 42 ;; S ;; \
SEND ;; WAIT Z ;; BN pgdual.cte.1 ;; E ;; S ;; SEND ;; WAIT Z ;; BN s 41 ;; E ;; S ;; SEND ;; WAIT Z"
it_status_mark
via=$(raw "$SN") || it_failed "clash via pgdual: $via"
old=$(ref "$SN") || it_failed "clash on old: $old"
assert_eq "$old" "$via" "a client's statement named pgdual.cte.1: every message as old alone's"
assert_not_contains "$via" "E 42P05" "...its Parse does not meet pgdual's statement"
assert_delta pinned_writes_total -eq 1 "...the WITH write before the clash pinned"
assert_delta nondeterministic_writes_total -eq 1 "...the one after it counted (pinning stops)"

psql_old postgres -q -c "DROP DATABASE IF EXISTS $REF"
it_proxy_stop
