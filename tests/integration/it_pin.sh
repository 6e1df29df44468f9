#!/usr/bin/env bash
# tests/integration/it_pin.sh: deterministic dual-write (DESIGN §5a): new stores exactly the
# values old stored. Concurrent INSERTs with serial, identity, now(), uuid and random() defaults
# (both protocols, 10 % failing on a unique key, in and out of transactions) leave the tables
# identical and give the clients old's rows; pgbench TPC-B leaves pgbench_history identical with
# its mtime; UPDATE/DELETE of now(), random(), LIMIT, ctid and SKIP LOCKED queue pops on tables
# whose physical order differs on new; a client that asked for no RETURNING gets the bytes old
# alone sends; a primary switch after pinned inserts (and the rollback after it) never reuses an
# id; nondeterministic_writes_total counts only writes that cannot be pinned.
# Each part has its own database and its own pgdual (state file), so one part's divergence does
# not hide the next part's result.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

HERE=$(cd "$(dirname "$0")" && pwd)
PIN_PY="$HERE/it_pin.py"
RAWPG="$IT_HARNESS_DIR/rawpg.py"
PQSCRIPT=${PGDUAL_PQSCRIPT:-$(dirname "$PGDUAL_BIN")/tests/pqscript}
[[ -x "$PQSCRIPT" ]] || it_fail "pqscript not found at $PQSCRIPT (cmake --build build)"
# The simple-protocol clients of part 1 use psycopg2 (Debian's python3-psycopg2, which belongs
# to /usr/bin/python3); without it they fall back to libpq's PQexec, still the simple protocol.
PY_PSYCOPG=""
for py in python3 /usr/bin/python3; do
    if "$py" -c 'import psycopg2' 2>/dev/null; then
        PY_PSYCOPG=$py
        break
    fi
done
[[ -n "$PY_PSYCOPG" ]] || it_log "psycopg2 not found: simple-protocol clients use PQexec"

ROWTXT="concat_ws('|', id, k, c, n, extract(epoch FROM at), u, r)"

# part_start NAME [ini overrides]: database NAME on both sides and a pgdual with its own state
# file and divergence log (a fresh secondary_state), compare_percent = 0 (no shadow reads).
part_start() {
    local name=$1
    shift
    it_log "$name: starts at ${SECONDS}s"
    DB=$name
    it_createdb "$DB"
    it_proxy_start "pgdual.state_file=$name.state" "pgdual.divergence_log=$name.jsonl" \
        "pgdual.sequence_sync_databases=$name" \
        cutover.compare_percent=0 "$@"
    DIVLOG="$IT_TMP/$name.jsonl"
}
conninfo() { echo "host=127.0.0.1 port=$PROXY_PORT user=postgres dbname=$DB"; }
# pq SCRIPT-FILE OUT-FILE: runs a pqscript script through pgdual.
pq() { timeout 60 "$PQSCRIPT" "$(conninfo)" <"$1" >"$2"; }

# dump PORT TABLE ORDER: every column of every row, in ORDER (a total order).
dump() {
    psql -X -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -p "$1" -U postgres -d "$DB" -tA \
        -c "COPY (SELECT * FROM $2 x ORDER BY $3) TO STDOUT"
}
# same_table TABLE [ORDER]: md5 of all columns ordered by ORDER (default id) equal on old and
# new; on a difference, says how many rows differ.
same_table() {
    local t=$1 ord=${2:-id} a b lost first
    dump "$OLD_PORT" "$t" "$ord" >"$IT_TMP/old.$t"
    dump "$NEW_PORT" "$t" "$ord" >"$IT_TMP/new.$t"
    a=$(md5sum <"$IT_TMP/old.$t")
    b=$(md5sum <"$IT_TMP/new.$t")
    if [[ "$a" == "$b" ]]; then
        it_pass "$DB.$t identical on old and new ($(wc -l <"$IT_TMP/old.$t") rows)"
        return 0
    fi
    lost=$(LC_ALL=C comm -23 <(LC_ALL=C sort "$IT_TMP/old.$t") <(LC_ALL=C sort "$IT_TMP/new.$t") | wc -l)
    diff "$IT_TMP/old.$t" "$IT_TMP/new.$t" >"$IT_TMP/diff.$t" || true
    first=$(sed -n '2p;$p' "$IT_TMP/diff.$t" | tr '\n' ' ')
    it_failed "$DB.$t differs: $lost of $(wc -l <"$IT_TMP/old.$t") rows on old are not on new; e.g. $first"
}
assert_in_sync() {
    assert_eq "in_sync" "$(it_status secondary_state)" "$1: secondary_state still in_sync"
}
# statuses OUT [exact]: the distinct "status command-status" pairs of a pqscript output, with
# counts; the row count ending a command status is N unless "exact".
statuses() {
    local strip='s/ [0-9]*$/ N/'
    [[ ${2:-} != exact ]] || strip=""
    cut -f2,3 "$1" | sed "$strip" | LC_ALL=C sort | uniq -c | awk '{ $1 = $1; print }' | paste -sd ';'
}

# wait_reads_on PORT: polls until reads through pgdual are answered by PORT. With workers = 1 and
# the read dial SET last, this shows the worker has every dial SET before it.
wait_reads_on() {
    it_wait_for 10 bash -c "[[ \$(psql -X -tA -h 127.0.0.1 -p $PROXY_PORT -U postgres -d $DB -c \"SELECT current_setting('port')\") == $1 ]]"
}
# dial_barrier: every dial SET so far has reached the (single) worker.
dial_barrier() {
    psql_admin "SET read_new_percent = 100" >/dev/null
    wait_reads_on "$NEW_PORT" || it_fail "reads did not move to new"
    psql_admin "SET read_new_percent = 0" >/dev/null
    wait_reads_on "$OLD_PORT" || it_fail "reads did not come back to old"
}

# ==== 1. 8 concurrent clients x 200 INSERTs, both protocols, 10 % failing ====================
part_start it_pin_ins
for t in t_serial t_ident t_uuid; do
    case $t in
    t_serial) idcol="id serial PRIMARY KEY" at="now()" ;;
    t_ident) idcol="id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY" at="clock_timestamp()" ;;
    t_uuid) idcol="id uuid PRIMARY KEY DEFAULT gen_random_uuid()" at="statement_timestamp()" ;;
    esac
    psql_proxy "$DB" -q -c "CREATE TABLE $t ($idcol, k int UNIQUE, c int, n int,
        at timestamptz DEFAULT $at, u uuid DEFAULT gen_random_uuid(), r float8 DEFAULT random())" \
        -c "INSERT INTO $t (k, c, n) VALUES (-1, -1, -1)"
done
it_status_mark
pids=()
for c in 0 1 2 3 4 5 6 7; do
    proto=simple
    ((c < 4)) || proto=extended
    python3 "$PIN_PY" gen "$c" "$proto" >"$IT_TMP/c$c.script"
    if [[ $proto == simple && -n "$PY_PSYCOPG" ]]; then
        timeout 60 "$PY_PSYCOPG" "$PIN_PY" psycopg2 "$(conninfo)" <"$IT_TMP/c$c.script" \
            >"$IT_TMP/c$c.out" 2>"$IT_TMP/c$c.err" &
    else
        pq "$IT_TMP/c$c.script" "$IT_TMP/c$c.out" 2>"$IT_TMP/c$c.err" &
    fi
    pids+=($!)
done
for c in 0 1 2 3 4 5 6 7; do
    rc=0
    wait "${pids[$c]}" || rc=$?
    err=$(head -c 300 "$IT_TMP/c$c.err")
    assert_eq 0 "$rc" "client $c ran its 200 INSERTs${err:+: $err}"
done
: >"$IT_TMP/returned"
ins_ok=0
for c in 0 1 2 3 4 5 6 7; do
    proto=simple
    ((c < 4)) || proto=extended
    if python3 "$PIN_PY" committed "$c" "$proto" "$IT_TMP/c$c.out" >>"$IT_TMP/returned" \
        2>"$IT_TMP/c$c.check"; then
        it_pass "client $c ($proto): every INSERT as planned (20 x 23505, the rest one row each)"
    else
        it_failed "client $c ($proto): $(cat "$IT_TMP/c$c.check")"
    fi
    ins_ok=$((ins_ok + $(grep -c $'\tINSERT 0 1\t' "$IT_TMP/c$c.out" || true)))
done
sort "$IT_TMP/returned" >"$IT_TMP/returned.sorted"
for t in t_serial t_ident t_uuid; do
    psql_old "$DB" -tA -c "SELECT $ROWTXT FROM $t WHERE k >= 0"
done | sort >"$IT_TMP/old_rows.sorted"
assert_eq "$(wc -l <"$IT_TMP/returned.sorted")" "$(wc -l <"$IT_TMP/old_rows.sorted")" \
    "as many rows on old as the clients committed"
assert_eq "" "$(diff "$IT_TMP/returned.sorted" "$IT_TMP/old_rows.sorted" | head -n 4)" \
    "the RETURNING values the clients got are old's rows"
for t in t_serial t_ident t_uuid; do
    same_table "$t"
done
for s in t_serial_id_seq "$(psql_old "$DB" -tA -c "SELECT pg_get_serial_sequence('t_ident', 'id')")"; do
    it_log "$s: old last_value $(psql_old "$DB" -tA -c "SELECT last_value FROM $s"), new $(psql_new "$DB" -tA -c "SELECT last_value FROM $s")"
done
assert_in_sync "1,600 concurrent INSERTs"
assert_delta nondeterministic_writes_total -eq 0 "every INSERT was pinned"
assert_delta pinned_writes_total -ge "$ins_ok" "pinned_writes_total counts the $ins_ok INSERTs old ran"
it_proxy_stop

# ==== 2. pgbench -i, TPC-B -c 8 -M simple then -M prepared ====================================
part_start it_pin_bench
if pgbench -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -i -s 1 -q "$DB" >"$IT_TMP/init.out" 2>&1; then
    it_pass "pgbench -i through pgdual"
else
    it_fail "pgbench -i: $(tail -n 5 "$IT_TMP/init.out")"
fi
it_status_mark
for mode in simple prepared; do
    rc=0
    pgbench -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -n -M "$mode" -c 8 -j 2 -T 3 "$DB" \
        >"$IT_TMP/bench-$mode.out" 2>&1 || rc=$?
    assert_eq 0 "$rc" "pgbench TPC-B -M $mode -c 8 exit status"
    assert_match "$(cat "$IT_TMP/bench-$mode.out")" "number of failed transactions: 0 " \
        "pgbench -M $mode: no failed transaction"
done
it_log "pgbench_history rows: $(psql_old "$DB" -tA -c 'SELECT count(*) FROM pgbench_history')"
same_table pgbench_history "x::text COLLATE \"C\""
same_table pgbench_accounts aid
same_table pgbench_tellers tid
same_table pgbench_branches bid
assert_in_sync "pgbench TPC-B"
assert_delta nondeterministic_writes_total -eq 0 "pgbench TPC-B counted no nondeterministic write"
assert_delta pinned_writes_total -gt 0 "pgbench's history INSERTs were pinned"
it_proxy_stop

# ==== 3. now(), random(), LIMIT, ctid and SKIP LOCKED with another physical order on new ======
part_start it_pin_upd
psql_proxy "$DB" -q <<'SQL'
CREATE TABLE t (id int PRIMARY KEY, v int, touched timestamptz, r float8);
INSERT INTO t SELECT g, g, NULL, 0 FROM generate_series(1, 1000) g;
CREATE TABLE q (id int PRIMARY KEY, v int);
INSERT INTO q SELECT g, g FROM generate_series(1, 1000) g;
CREATE TABLE jobs (id serial PRIMARY KEY, payload int, taken_by int, taken_at timestamptz);
INSERT INTO jobs (payload) SELECT g FROM generate_series(1, 150) g;
CREATE TABLE q2 (id int PRIMARY KEY, v int);
INSERT INTO q2 SELECT g, g FROM generate_series(1, 150) g;
SQL
# Directly on new: the even rows move to the end of the heap, so a scan without ORDER BY (LIMIT,
# SKIP LOCKED, ctid) meets other rows first there.
psql_new "$DB" -c "UPDATE t SET v = v WHERE id % 2 = 0" -c "UPDATE q SET v = v WHERE id % 2 = 0" \
    -c "UPDATE q2 SET v = v WHERE id % 2 = 0"
for t in t q q2; do
    first="SELECT string_agg(id::text, ',') FROM (SELECT id FROM $t LIMIT 8) s"
    a=$(psql_old "$DB" -tA -c "$first")
    b=$(psql_new "$DB" -tA -c "$first")
    [[ "$a" != "$b" ]] || it_fail "$t: the physical order on new is still old's ($a)"
done
it_pass "t, q and q2 come out of a scan in another order on new"
it_status_mark
# First, while (0,2) is still id 2 on old (on new it is the version the UPDATE above left dead).
assert_eq "UPDATE 1" "$(psql_proxy "$DB" -c "UPDATE t SET v = -1 WHERE ctid = '(0,2)'")" \
    "UPDATE by ctid changed one row on old"
psql_proxy "$DB" -q -c "UPDATE t SET touched = now() WHERE id <= 300" \
    -c "UPDATE t SET r = random()" \
    -c "DELETE FROM q WHERE id IN (SELECT id FROM q LIMIT 10)" \
    -c "UPDATE q SET v = v + 1000 WHERE id IN (SELECT id FROM q LIMIT 10)"
printf '%s\n' $'X\tUPDATE t SET touched = clock_timestamp() WHERE id > $1 AND id <= $2\t300\t600' \
    $'X\tDELETE FROM q WHERE id IN (SELECT id FROM q WHERE v > $1 LIMIT 5)\t0' \
    $'X\tBEGIN' $'X\tUPDATE t SET r = random() * $1 WHERE id % 10 = 0\t10' \
    $'X\tDELETE FROM q WHERE id IN (SELECT id FROM q LIMIT 3)' $'X\tCOMMIT' >"$IT_TMP/upd.script"
pq "$IT_TMP/upd.script" "$IT_TMP/upd.out"
assert_eq "1 COMMAND_OK BEGIN;1 COMMAND_OK COMMIT;2 COMMAND_OK DELETE N;2 COMMAND_OK UPDATE N" \
    "$(statuses "$IT_TMP/upd.out")" "the extended-protocol UPDATEs and DELETEs ran"
# The queue: 4 workers, each popping 30 jobs by UPDATE ... SKIP LOCKED (extended protocol) and
# deleting 30 rows of q2 by DELETE ... SKIP LOCKED without ORDER BY (simple protocol), at once.
pop="UPDATE jobs SET taken_by = \$1, taken_at = now() WHERE id = (SELECT id FROM jobs WHERE taken_by IS NULL ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id"
del="DELETE FROM q2 WHERE id = (SELECT id FROM q2 FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id"
pids=()
for w in 1 2 3 4; do
    {
        printf 'P\tpop\t%s\n' "$pop"
        for ((i = 0; i < 30; i++)); do
            printf 'E\tpop\t%s\nQ\t%s\n' "$w" "$del"
        done
    } >"$IT_TMP/w$w.script"
    pq "$IT_TMP/w$w.script" "$IT_TMP/w$w.out" &
    pids+=($!)
done
for w in 1 2 3 4; do
    wait "${pids[$((w - 1))]}" || it_failed "queue worker $w: exit status $?"
    assert_eq "1 COMMAND_OK;30 TUPLES_OK DELETE 1;30 TUPLES_OK UPDATE 1" "$(statuses "$IT_TMP/w$w.out" exact)" \
        "queue worker $w popped 30 jobs and deleted 30 rows"
    got=$(awk -F'\t' '$3 ~ /^UPDATE/ { print $8 }' "$IT_TMP/w$w.out" | sort -n | paste -sd,)
    assert_eq "$(psql_old "$DB" -tA -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM jobs WHERE taken_by = $w")" \
        "$got" "the jobs worker $w got are the ones old marked taken_by = $w"
done
assert_eq "$(cat "$IT_TMP"/w?.out | awk -F'\t' '$3 ~ /^DELETE/ { print $8 }' | sort -n | paste -sd,)" \
    "$(psql_old "$DB" -tA -c "SELECT string_agg(g::text, ',' ORDER BY g) FROM generate_series(1, 150) g WHERE g NOT IN (SELECT id FROM q2)")" \
    "the rows the workers deleted are the ones missing on old"
for t in t q jobs q2; do
    same_table "$t"
done
assert_in_sync "UPDATE/DELETE by now(), random(), LIMIT, ctid, SKIP LOCKED"
assert_delta nondeterministic_writes_total -eq 0 "all of them were pinned"

# ==== 4. no RETURNING asked: the client gets what old alone would send ========================
# The same statements against a fresh copy of the table directly on old (database DB_direct),
# then through pgdual; every reply message compared (T's table OIDs aside, which differ between
# databases), and libpq's view of each result.
direct=${DB}_direct
setup="CREATE TABLE w (id serial PRIMARY KEY, k int, at timestamptz DEFAULT now(), touched timestamptz, r float8 DEFAULT random());
INSERT INTO w (k) SELECT g FROM generate_series(1, 20) g;"
psql_old postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $direct" \
    -c "CREATE DATABASE $direct"
psql_old "$direct" -c "$setup"
# Separate queries: an INSERT into a table created by the same query cannot be pinned (its
# defaults are unknown before it runs); part 6 shows that one is counted.
psql_proxy "$DB" -q -c "${setup%%;*}" -c "${setup#*;}"
wire="DETAIL"
for step in "Q INSERT INTO w (k) VALUES (101)" "Q INSERT INTO w (k) VALUES (102), (103)" \
    "Q UPDATE w SET touched = now() WHERE k <= 5" \
    "Q DELETE FROM w WHERE id IN (SELECT id FROM w LIMIT 2)" \
    "Q UPDATE w SET r = random() WHERE k > 100" \
    "Q BEGIN; INSERT INTO w (k) VALUES (104); UPDATE w SET touched = now() WHERE k = 104; COMMIT" \
    "Q INSERT INTO w (k) VALUES (105) RETURNING k, id" \
    "P INSERT INTO w (k) VALUES (106) ;; D S ;; B ;; D P ;; E ;; S" \
    "P UPDATE w SET touched = now() WHERE k = 106 ;; D S ;; B ;; D P ;; E ;; S" \
    "P DELETE FROM w WHERE id IN (SELECT id FROM w WHERE k < 10 LIMIT 3) ;; D S ;; B ;; D P ;; E ;; S" \
    "P INSERT INTO w (k) VALUES (107) RETURNING k ;; D S ;; B ;; D P ;; E ;; S" \
    "Q BEGIN ;; SEND ;; WAIT Z ;; P INSERT INTO w (k) VALUES (108) ;; B ;; E ;; P UPDATE w SET touched = now() WHERE k = 108 ;; B ;; D P ;; E ;; S ;; SEND ;; WAIT Z ;; Q COMMIT"; do
    wire+=" ;; $step ;; SEND ;; WAIT Z"
done
timeout 30 python3 "$RAWPG" "$OLD_PORT" "$direct" "$wire" >"$IT_TMP/wire.old" ||
    it_fail "rawpg directly on old: $(cat "$IT_TMP/wire.old")"
timeout 30 python3 "$RAWPG" "$PROXY_PORT" "$DB" "$wire" >"$IT_TMP/wire.pgdual" ||
    it_failed "rawpg through pgdual: $(tail -n 3 "$IT_TMP/wire.pgdual")"
assert_eq "$(cat "$IT_TMP/wire.old")" "$(cat "$IT_TMP/wire.pgdual")" \
    "every reply message ($(wc -l <"$IT_TMP/wire.old")) equals old's alone: tags, NoData, RowDescription, rows"
assert_eq "2" "$(grep -c '^D ' "$IT_TMP/wire.old")" \
    "old alone sent rows only for the two statements that asked for RETURNING"
printf '%s\n' $'Q\tINSERT INTO w (k) VALUES (201)' $'X\tINSERT INTO w (k) VALUES ($1)\t202' \
    $'P\tins\tINSERT INTO w (k) VALUES ($1)' $'D\tins' $'E\tins\t203' \
    $'Q\tUPDATE w SET touched = now() WHERE k > 200' $'X\tUPDATE w SET r = random() WHERE k > $1\t200' \
    $'X\tDELETE FROM w WHERE id IN (SELECT id FROM w WHERE k > 200 LIMIT 2)' \
    $'Q\tINSERT INTO w (k) VALUES (204), (205)' >"$IT_TMP/libpq.script"
want=$'1\tCOMMAND_OK\tINSERT 0 1\t0\t1\t0\t0\t
2\tCOMMAND_OK\tINSERT 0 1\t0\t1\t0\t0\t
3\tCOMMAND_OK\t\t0\t\t0\t0\t
4\tCOMMAND_OK\t\t0\t\t0\t1\t
5\tCOMMAND_OK\tINSERT 0 1\t0\t1\t0\t0\t
6\tCOMMAND_OK\tUPDATE 3\t0\t3\t0\t0\t
7\tCOMMAND_OK\tUPDATE 3\t0\t3\t0\t0\t
8\tCOMMAND_OK\tDELETE 2\t0\t2\t0\t0\t
9\tCOMMAND_OK\tINSERT 0 2\t0\t2\t0\t0\t'
"$PQSCRIPT" "host=127.0.0.1 port=$OLD_PORT user=postgres dbname=$direct" \
    <"$IT_TMP/libpq.script" >"$IT_TMP/libpq.old"
assert_eq "$want" "$(cat "$IT_TMP/libpq.old")" "libpq directly on old: no tuples, the expected counts"
pq "$IT_TMP/libpq.script" "$IT_TMP/libpq.pgdual" || true
assert_eq "$want" "$(cat "$IT_TMP/libpq.pgdual")" \
    "libpq through pgdual: PQntuples 0, PQnfields 0, PQcmdTuples as old alone"
same_table w
assert_eq "$(dump "$OLD_PORT" w id | cut -f1,2 | md5sum)" \
    "$(DB=$direct dump "$OLD_PORT" w id | cut -f1,2 | md5sum)" "the copy directly on old has the same ids and k"
psql_old postgres -c "DROP DATABASE $direct" >/dev/null
assert_in_sync "statements without RETURNING"
it_proxy_stop

# ==== 5. promotion after 1,000 pinned inserts, and the rollback after it ======================
part_start it_pin_promote pgdual.workers=1
psql_proxy "$DB" -q -c "CREATE TABLE p_serial (id serial PRIMARY KEY, k int UNIQUE, at timestamptz DEFAULT now())" \
    -c "CREATE TABLE p_ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, k int UNIQUE, at timestamptz DEFAULT now())" \
    -c "INSERT INTO p_serial (k) VALUES (-1)" -c "INSERT INTO p_ident (k) VALUES (-1)"
# ins_script FILE PROTO FROM COUNT [EVERY]: COUNT single-row INSERTs alternating between the
# tables, k = FROM + i, one in EVERY (default 50; 0: none) with k = -1 (a 23505 after the id was
# drawn).
ins_script() {
    awk -v proto="$2" -v from="$3" -v cnt="$4" -v every="${5:-50}" 'BEGIN { OFS = "\t"
        if (proto == "E") {
            print "P", "ps", "INSERT INTO p_serial (k) VALUES ($1) RETURNING id"
            print "P", "pi", "INSERT INTO p_ident (k) VALUES ($1) RETURNING id"
        }
        for (i = 0; i < cnt; i++) {
            k = (every && i % every == every - 1) ? -1 : from + i
            if (proto == "E") print "E", (i % 2 ? "pi" : "ps"), k
            else print "Q", "INSERT INTO " (i % 2 ? "p_ident" : "p_serial") " (k) VALUES (" k ") RETURNING id"
        } }' >"$1"
}
ins_script "$IT_TMP/p1.script" Q 10000 450
ins_script "$IT_TMP/p2.script" E 20000 450
pq "$IT_TMP/p1.script" "$IT_TMP/p1.out" &
p1=$!
pq "$IT_TMP/p2.script" "$IT_TMP/p2.out" &
p2=$!
wait "$p1" || it_failed "inserting client 1: exit status $?"
wait "$p2" || it_failed "inserting client 2: exit status $?"
psql_proxy "$DB" -q -c "INSERT INTO p_serial (k) SELECT g FROM generate_series(30000, 30049) g" \
    -c "INSERT INTO p_ident (k) SELECT g FROM generate_series(30000, 30049) g"
assert_eq "9 FATAL_ERROR 23505;441 TUPLES_OK INSERT 0 1" "$(statuses "$IT_TMP/p1.out" exact)" \
    "client 1 (simple): 441 INSERTs, 9 failed on the unique key"
assert_eq "2 COMMAND_OK;9 FATAL_ERROR 23505;441 TUPLES_OK INSERT 0 1" "$(statuses "$IT_TMP/p2.out" exact)" \
    "client 2 (extended): 441 INSERTs, 9 failed on the unique key"
same_table p_serial
same_table p_ident
assert_in_sync "1,000 inserts"
ident_seq=$(psql_old "$DB" -tA -c "SELECT pg_get_serial_sequence('p_ident', 'id')")
seq_old() { psql_old "$DB" -tA -c "SELECT (SELECT last_value FROM p_serial_id_seq) || ' ' || (SELECT last_value FROM $ident_seq)"; }
seq_new() { psql_new "$DB" -tA -c "SELECT (SELECT last_value FROM p_serial_id_seq) || ' ' || (SELECT last_value FROM $ident_seq)"; }
read -r last_s last_i < <(seq_old)
it_log "before the switch: sequences on old $last_s $last_i, on new $(seq_new)"
# after_switch TAG FROM: 100 INSERTs through pgdual (50 per table) must all succeed, with ids
# above LAST_S / LAST_I, and leave the tables identical.
after_switch() {
    local tag=$1 min_s min_i
    ins_script "$IT_TMP/$tag.script" Q "$2" 100 0
    pq "$IT_TMP/$tag.script" "$IT_TMP/$tag.out" || it_failed "$tag: client exit status $?"
    assert_eq "100 TUPLES_OK INSERT 0 1" "$(statuses "$IT_TMP/$tag.out" exact)" \
        "$tag: 100 INSERTs succeed (no id collision)"
    min_s=$(awk -F'\t' 'NR % 2 == 1 && $8 != "" { print $8 }' "$IT_TMP/$tag.out" | sort -n | head -n1)
    min_i=$(awk -F'\t' 'NR % 2 == 0 && $8 != "" { print $8 }' "$IT_TMP/$tag.out" | sort -n | head -n1)
    if ((${min_s:-0} > last_s && ${min_i:-0} > last_i)); then
        it_pass "$tag: ids continue past the previous primary's ($min_s > $last_s, $min_i > $last_i)"
    else
        it_failed "$tag: ids do not continue past the previous primary's: serial ${min_s:-none} after $last_s, identity ${min_i:-none} after $last_i"
    fi
    same_table p_serial
    same_table p_ident
}
if psql_admin "SET primary = new" >"$IT_TMP/switch.out" 2>&1; then
    it_pass "SET primary = new accepted"
    psql_admin "SET read_new_percent = 100" >/dev/null
    wait_reads_on "$NEW_PORT" || it_fail "the dials did not reach the worker"
    it_log "SHOW STATUS keys naming sequences: $(psql_admin "SHOW STATUS" | grep -i seq | paste -sd ' ')"
    after_switch promoted 40000
    assert_in_sync "100 inserts with new as the primary"
    read -r last_s last_i < <(seq_new)
    it_log "before the rollback: sequences on new $last_s $last_i, on old $(seq_old)"
    assert_ok "ROLLBACK CUTOVER" -- psql_admin "ROLLBACK CUTOVER"
    wait_reads_on "$OLD_PORT" || it_fail "the rollback did not reach the worker"
    after_switch rolled_back 50000
    assert_in_sync "100 inserts after the rollback"
else
    it_failed "SET primary = new refused: $(cat "$IT_TMP/switch.out"); secondary_state $(it_status secondary_state)"
fi
it_proxy_stop

# ==== 6. what cannot be pinned is counted, and only that =====================================
part_start it_pin_unpinned pgdual.workers=1
psql_proxy "$DB" -q -c "CREATE TABLE keyed (id int PRIMARY KEY, r float8)" \
    -c "INSERT INTO keyed SELECT g, 0 FROM generate_series(1, 100) g" \
    -c "CREATE TABLE nokey (a int, r float8)" \
    -c "INSERT INTO nokey SELECT g, 0 FROM generate_series(1, 100) g" \
    -c "CREATE TABLE log (id serial PRIMARY KEY, at timestamptz DEFAULT now())"
it_status_mark
psql_proxy "$DB" -q -c "UPDATE keyed SET r = random()"
assert_delta nondeterministic_writes_total -eq 0 "UPDATE keyed SET r = random() was pinned, not counted"
same_table keyed
assert_in_sync "UPDATE of a table with a primary key"
psql_proxy "$DB" -q -c "UPDATE nokey SET r = random()"
assert_delta nondeterministic_writes_total -eq 1 "UPDATE nokey SET r = random() (no key) counted once"
if it_wait_for 5 bash -c "psql -X -tA -h 127.0.0.1 -p $PROXY_PORT -U admin -d pgdual -c 'SHOW STATUS' | grep -qx 'secondary_state|diverged'"; then
    it_pass "a write that could not be pinned takes secondary_state to diverged"
else
    it_failed "secondary_state is $(it_status secondary_state) after an unpinnable write, want diverged"
fi
assert_contains "$(cat "$DIVLOG" 2>/dev/null)" '"kind":"nondeterministic_write"' \
    "the divergence log has the nondeterministic_write"
# pin_writes = off is today's verbatim mirroring: counted; so is mirror_order = parallel. Each
# with a fresh pgdual (state file): the dial barrier routes reads to new, which needs in_sync.
# unpinned_insert DIAL VALUE: with the runtime dial SET, an INSERT of a serial and now() default
# is counted once.
unpinned_insert() {
    it_proxy_start "pgdual.state_file=$1.state" "pgdual.divergence_log=$1.jsonl" \
        cutover.compare_percent=0 pgdual.workers=1
    it_status_mark
    if psql_admin "SET $1 = $2" >"$IT_TMP/set.out" 2>&1; then
        dial_barrier
        psql_proxy "$DB" -q -c "INSERT INTO log DEFAULT VALUES"
        assert_delta nondeterministic_writes_total -eq 1 "with $1 = $2 an INSERT of now() is counted"
    else
        it_failed "SET $1 = $2: $(cat "$IT_TMP/set.out")"
    fi
}
unpinned_insert pin_writes off
unpinned_insert mirror_order parallel
it_proxy_stop
