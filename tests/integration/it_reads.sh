#!/usr/bin/env bash
# tests/integration/it_reads.sh: the read dial (§6). Routed reads are served by new for
# read_new_percent % of them; reads in a transaction see its own writes; shadow compare finds a
# changed row (SHOW DIVERGENCES shows the normalized statement) but not another row order nor
# now(); on_read_divergence = serve_primary returns old's answer; a read new cannot answer
# (missing table, slower than read_timeout_ms) falls back to old; a slow shadow is cancelled
# after shadow_timeout_ms without a divergence.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "the read dial exists only in pgdual (PGDUAL_TEST_DIRECT=1)"
it_mirrors || it_skip "the read dial needs both backends (PGDUAL_MIRRORS=0)"

DB=it_reads
it_createdb "$DB"

# Made directly on each side, so who answered is visible: marker says 'old' or 'new'; only_old
# exists on old alone; slowv answers at once on old and after 5 s on new.
psql_old "$DB" -c "CREATE TABLE marker (v text)" -c "INSERT INTO marker VALUES ('old')" \
    -c "CREATE TABLE only_old (v text)" -c "INSERT INTO only_old VALUES ('from old')" \
    -c "CREATE VIEW slowv AS SELECT 'old'::text AS x"
psql_new "$DB" -c "CREATE TABLE marker (v text)" -c "INSERT INTO marker VALUES ('new')" \
    -c "CREATE VIEW slowv AS SELECT 'new'::text AS x FROM pg_sleep(5)"

it_proxy_start cutover.read_new_percent=0 cutover.compare_percent=0

# repeat_sql N SQL: a psql script of N copies of SQL.
repeat_sql() {
    local i
    for ((i = 0; i < $1; i++)); do
        printf '%s\n' "$2"
    done
}

# run_script NAME: runs $IT_TMP/NAME.sql through pgdual in one session (-tA); output in
# $IT_TMP/NAME.out; false when psql failed.
run_script() {
    psql_proxy "$DB" -tA -f "$IT_TMP/$1.sql" >"$IT_TMP/$1.out" 2>&1
}

count_lines() { grep -cxF -- "$2" "$IT_TMP/$1.out" || true; }

# active_on_new PATTERN: statements running on new whose text contains PATTERN.
active_on_new() {
    psql_new "$DB" -tA -c "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'
        AND pid <> pg_backend_pid() AND query LIKE '%$1%'"
}
none_active_on_new() { [[ "$(active_on_new "$1")" == 0 ]]; }

# ---------------------------------------------------------------------------------------------
# The dial: 500 reads of marker in one session at 0, 100 and 30 % (no shadows).
repeat_sql 500 "SELECT v FROM marker;" >"$IT_TMP/marker.sql"
for dial in 0 100 30; do
    it_dials read_new_percent="$dial"
    it_status_mark
    run_script marker || it_failed "dial $dial: psql failed: $(tail -c 1000 "$IT_TMP/marker.out")"
    n_old=$(count_lines marker old)
    n_new=$(count_lines marker new)
    assert_eq 500 "$((n_old + n_new))" "dial $dial: 500 answers, each 'old' or 'new'"
    case $dial in
    0) assert_eq 0 "$n_new" "dial 0: every read served by old" ;;
    100) assert_eq 500 "$n_new" "dial 100: every read served by new" ;;
    30)
        if ((n_new >= 100 && n_new <= 200)); then
            it_pass "dial 30: $n_new of 500 reads served by new (20-40 %)"
        else
            it_failed "dial 30: $n_new of 500 reads served by new, want 100..200"
        fi
        ;;
    esac
    assert_delta reads_served_old -eq "$n_old" "dial $dial: reads_served_old counts old's answers"
    assert_delta reads_served_new -eq "$n_new" "dial $dial: reads_served_new counts new's answers"
done

# ---------------------------------------------------------------------------------------------
# Reads in a transaction see its own writes: right after the write (whichever side serves it:
# lockstep may not have applied the write on new yet), and once new has it, served by new (dial
# 100; the marker joined in shows the side).
psql_proxy "$DB" -q -c "CREATE TABLE rw (id int PRIMARY KEY, v text)"
it_dials read_new_percent=100
{
    for i in $(seq 1 20); do
        echo "BEGIN;"
        echo "INSERT INTO rw VALUES ($i, 'mine$i');"
        echo "SELECT 'a$i:' || rw.v || ':' || m.v FROM rw, marker m WHERE rw.id = $i;"
        echo "SELECT 'c$i:' || count(*) FROM rw;"
        echo "SELECT 'b$i:' || rw.v || ':' || m.v FROM rw, marker m WHERE rw.id = $i;"
        echo "COMMIT;"
    done
} >"$IT_TMP/rw.sql"
it_status_mark
run_script rw || it_failed "transactions: psql failed: $(tail -c 1000 "$IT_TMP/rw.out")"
own=0 own_new=0 at_once_new=0
for i in $(seq 1 20); do
    grep -qE "^a$i:mine$i:(old|new)\$" "$IT_TMP/rw.out" && grep -qxF "c$i:$i" "$IT_TMP/rw.out" &&
        own=$((own + 1))
    grep -qxF "a$i:mine$i:new" "$IT_TMP/rw.out" && at_once_new=$((at_once_new + 1))
    grep -qxF "b$i:mine$i:new" "$IT_TMP/rw.out" && own_new=$((own_new + 1))
done
assert_eq 20 "$own" "a read right after a write in its transaction sees the write"
assert_eq 20 "$own_new" "dial 100: a read in a transaction is served by new and sees the transaction's write"
assert_eq 20 "$at_once_new" "dial 100: a read right after the write waits for new to apply it and is served by new"
assert_delta reads_served_new -ge 20 "reads_served_new counts the reads in transactions served by new"
rw_rows="SELECT count(*) || ':' || md5(string_agg(id || '=' || v, ',' ORDER BY id)) FROM rw"
rw_old=$(psql_old "$DB" -tA -c "$rw_rows")
assert_match "$rw_old" '^20:' "the 20 committed rows are on old"
assert_eq "$rw_old" "$(psql_new "$DB" -tA -c "$rw_rows")" "and the same rows are on new"

# ---------------------------------------------------------------------------------------------
# Shadow compare, both sides equal (eq is made through pgdual): 500 reads served by old and
# shadowed on new, 500 served by new and shadowed on old, back to back (psql sends each read when
# the previous one is answered): at compare 100 every one is compared; no divergence.
psql_proxy "$DB" -q -c "CREATE TABLE eq (id int PRIMARY KEY, v text)" \
    -c "INSERT INTO eq SELECT g, 'v' || g FROM generate_series(1, 1000) g"
for i in $(seq 1 500); do echo "SELECT id, v FROM eq WHERE id = $i;"; done >"$IT_TMP/eq0.sql"
for i in $(seq 501 1000); do echo "SELECT id, v FROM eq WHERE id = $i;"; done >"$IT_TMP/eq100.sql"
it_status_mark
it_dials read_new_percent=0 compare_percent=100
run_script eq0 || it_failed "eq reads at dial 0: $(tail -c 1000 "$IT_TMP/eq0.out")"
it_dials read_new_percent=100
run_script eq100 || it_failed "eq reads at dial 100: $(tail -c 1000 "$IT_TMP/eq100.out")"
assert_eq "500 500" "$(grep -c '^[0-9]*|v[0-9]*$' "$IT_TMP/eq0.out") $(grep -c '^[0-9]*|v[0-9]*$' "$IT_TMP/eq100.out")" \
    "1,000 shadowed reads answered"
assert_delta reads_served_new -eq 500 "500 of them served by new"
# At dial 0 the client does not wait for a shadow: a read that comes while new still runs the
# previous one is served by old alone and counted as skipped; at dial 100 every read is compared.
assert_delta shadow_compares_total -ge 500 "the dial-100 reads were all compared, plus some at dial 0" 30
# (the last shadow may still finish after psql has its answer)
for _ in $(seq 1 50); do
    compared=$(it_status_delta shadow_compares_total)
    skipped=$(it_status_delta shadows_skipped_total)
    ((compared + skipped < 1000)) || break
    sleep 0.1
done
assert_eq 1000 "$((compared + skipped))" "every read drawn for a shadow was compared or counted as skipped ($compared + $skipped)"
assert_delta divergences_total -eq 0 "equal sides: no divergence"

# A row changed on new alone: the same read through pgdual is a result divergence, listed by
# SHOW DIVERGENCES with its normalized statement (no literal).
# A shadow slower than the answer: psql has old's answer and sends Terminate while new still
# runs the shadow; the comparison is still made (the session ends after it).
psql_old "$DB" -c "CREATE VIEW late_shadow AS SELECT 'old'::text AS x"
psql_new "$DB" -c "CREATE VIEW late_shadow AS SELECT 'new'::text AS x FROM pg_sleep(0.5)"
it_dials read_new_percent=0
it_status_mark
assert_eq "old" "$(psql_proxy "$DB" -tA -c "SELECT x FROM late_shadow")" "the client gets old's answer at once"
assert_delta divergences_result_mismatch -eq 1 "a shadow still running when the client leaves is compared" 10

psql_new "$DB" -c "UPDATE eq SET v = 'changed' WHERE id = 7"
it_status_mark
assert_eq "v7" "$(psql_proxy "$DB" -tA -c "SELECT v FROM eq WHERE id = 7")" "dial 0 serves old's row"
assert_delta divergences_total -eq 1 "the changed row is a divergence" 10
assert_delta divergences_result_mismatch -eq 1 "of kind result_mismatch" 10
divs=$(psql_admin "SHOW DIVERGENCES" 2>&1) || divs="SHOW DIVERGENCES failed: $divs"
div_line=$(grep -F "FROM eq WHERE id = \$1" <<<"$divs" | head -n1 || true)
assert_contains "$div_line" "SELECT v FROM eq WHERE id = \$1" "SHOW DIVERGENCES lists the normalized statement"
assert_match "$div_line" '^[^|]+[|]result_mismatch[|][1-9][0-9]*[|]' "with kind result_mismatch and a count"
assert_not_contains "$divs" "id = 7" "SHOW DIVERGENCES shows no literal"

# The same rows in another physical order on new (CLUSTER by id DESC there): no divergence.
psql_proxy "$DB" -q -c "CREATE TABLE ord (id int, v text)" \
    -c "INSERT INTO ord SELECT g, 'o' || g FROM generate_series(1, 200) g"
psql_new "$DB" -c "CREATE INDEX ord_desc ON ord (id DESC)" -c "CLUSTER ord USING ord_desc"
first_old=$(psql_old "$DB" -tA -c "SELECT id FROM ord" | head -n1)
first_new=$(psql_new "$DB" -tA -c "SELECT id FROM ord" | head -n1)
[[ "$first_old" == 1 && "$first_new" == 200 ]] ||
    it_fail "setup: old and new should return ord in opposite orders (first rows $first_old, $first_new)"
# A pause between the reads lets each shadow finish before the next read (see eq above for
# back-to-back reads).
repeat_sql 5 "SELECT id, v FROM ord;"$'\n''\! sleep 0.2' >"$IT_TMP/ord.sql"
it_status_mark
run_script ord || it_failed "ord reads at dial 0: $(tail -c 1000 "$IT_TMP/ord.out")"
assert_eq 1000 "$(grep -c . "$IT_TMP/ord.out")" "dial 0: 5 x 200 rows"
it_dials read_new_percent=100
run_script ord || it_failed "ord reads at dial 100: $(tail -c 1000 "$IT_TMP/ord.out")"
assert_eq "200|o200" "$(head -n1 "$IT_TMP/ord.out")" "dial 100: new's order reaches the client"
assert_delta shadow_compares_total -ge 10 "the 10 reads of ord were compared" 10
assert_delta divergences_total -eq 0 "another row order is no divergence"

# now() is not comparable: counted as such, never as a divergence.
it_dials read_new_percent=0
it_status_mark
repeat_sql 5 "SELECT now();" >"$IT_TMP/now.sql"
echo "SELECT now(), v FROM eq WHERE id = 1;" >>"$IT_TMP/now.sql"
run_script now || it_failed "now() reads: $(tail -c 1000 "$IT_TMP/now.out")"
assert_delta shadow_not_comparable_total -ge 6 "reads of now() are not comparable" 10
sleep 0.5 # a shadow counted late would show now
assert_delta divergences_total -eq 0 "now() is no divergence"

# on_read_divergence: serve_primary gives the client old's row when the two differ; log gives
# new's (dial 100). Both count the divergence.
it_dials read_new_percent=100 compare_percent=100 on_read_divergence=serve_primary
it_status_mark
assert_eq "v7" "$(psql_proxy "$DB" -tA -c "SELECT v FROM eq WHERE id = 7")" \
    "serve_primary: the client gets old's row"
assert_delta divergences_total -eq 1 "serve_primary: the divergence is counted" 10
it_status_mark
assert_eq "v8" "$(psql_proxy "$DB" -tA -c "SELECT v FROM eq WHERE id = 8")" "serve_primary: an equal row"
assert_delta reads_served_new -eq 1 "serve_primary: an equal read is still served by new"
it_dials on_read_divergence=log
it_status_mark
assert_eq "changed" "$(psql_proxy "$DB" -tA -c "SELECT v FROM eq WHERE id = 7")" \
    "log: the client gets new's row"
assert_delta divergences_total -eq 1 "log: the divergence is counted" 10
psql_new "$DB" -c "UPDATE eq SET v = 'v7' WHERE id = 7"

# ---------------------------------------------------------------------------------------------
# Fallback: a table new does not have. Every read fails on new and is answered by old; the
# session's new connection stays usable.
it_dials read_new_percent=100 compare_percent=0
repeat_sql 20 "SELECT v FROM only_old;" >"$IT_TMP/only_old.sql"
echo "SELECT v FROM marker;" >>"$IT_TMP/only_old.sql"
it_status_mark
if run_script only_old; then
    it_pass "reads of a table missing on new succeed"
else
    it_failed "reads of a table missing on new: $(tail -c 1000 "$IT_TMP/only_old.out")"
fi
assert_eq 20 "$(count_lines only_old "from old")" "all 20 answered from old"
assert_not_contains "$(cat "$IT_TMP/only_old.out")" "ERROR" "the client sees no error"
assert_eq "new" "$(tail -n1 "$IT_TMP/only_old.out")" "the session reads new again afterwards"
assert_delta fallbacks_error -eq 20 "fallbacks_error counts the 20 fallbacks"
assert_delta fallbacks_total -eq 20 "fallbacks_total too"

# answered_by_old_promptly SESSION WHAT: SESSION reads slowv (5 s on new, at once on old); old's
# answer must reach the client within 3 s.
answered_by_old_promptly() {
    local t0 elapsed
    t0=$(it_now_ms)
    it_session_send "$1" "SELECT x FROM slowv;"
    if ! it_session_wait "$1" old 1 20; then
        it_failed "$2: no answer from old: $(cat "$IT_TMP/$1.out")"
        return 0
    fi
    elapsed=$(($(it_now_ms) - t0))
    if ((elapsed < 3000)); then
        it_pass "$2 is answered by old in ${elapsed} ms"
    else
        it_failed "$2 took ${elapsed} ms, want < 3000"
    fi
}

# Fallback: a read slower than read_timeout_ms on new is cancelled there and answered by old.
it_dials read_timeout_ms=500
it_session_open slow "$DB"
it_session_send slow "SELECT v FROM marker;"
it_session_wait slow new || it_failed "slow session: first read: $(cat "$IT_TMP/slow.out")"
it_status_mark
answered_by_old_promptly slow "a read slower than read_timeout_ms (500) on new"
assert_delta fallbacks_timeout -eq 1 "fallbacks_timeout counts it" 5
if it_wait_for 3 none_active_on_new slowv; then
    it_pass "the slow read was cancelled on new"
else
    it_failed "the slow read still runs on new"
fi
it_session_send slow "SELECT v FROM marker;"
if it_session_wait slow new 2; then
    it_pass "after the timeout the session reads new again"
else
    it_failed "read after the timeout: $(cat "$IT_TMP/slow.out")"
fi
it_session_close slow
assert_not_contains "$(cat "$IT_TMP/slow.out")" "ERROR" "the slow session saw no error"

# A shadow slower than shadow_timeout_ms: cancelled and counted as timed out, no divergence
# (its answer would differ), and the client's answer from old was not held up.
it_dials read_timeout_ms=5000 read_new_percent=0 compare_percent=100 shadow_timeout_ms=500
it_session_open shadow "$DB"
it_session_send shadow "SELECT 'ready';"
it_session_wait shadow ready || it_failed "shadow session: $(cat "$IT_TMP/shadow.out")"
it_status_mark
answered_by_old_promptly shadow "a read with a shadow slower than shadow_timeout_ms (500)"
assert_delta shadow_timeouts_total -eq 1 "shadow_timeouts_total counts the slow shadow" 10
if it_wait_for 3 none_active_on_new slowv; then
    it_pass "the slow shadow was cancelled on new"
else
    it_failed "the slow shadow still runs on new"
fi
it_session_send shadow "SELECT 'after';"
if it_session_wait shadow after 1 5; then
    it_pass "the session goes on after the shadow timeout"
else
    it_failed "statement after the shadow timeout: $(cat "$IT_TMP/shadow.out")"
fi
it_session_close shadow
assert_delta divergences_total -eq 0 "a timed-out shadow is no divergence"

# A read the dial sends to new waits for new to apply the transaction's write, but only up to
# read_timeout_ms: with new's table locked by another connection, old answers it (and the
# transaction reads its own write there); COMMIT then waits for new.
psql_proxy "$DB" -q -c "CREATE TABLE lagged (id int PRIMARY KEY)"
it_dials read_new_percent=100 compare_percent=0 read_timeout_ms=500
psql_new "$DB" -q -c "BEGIN" -c "LOCK TABLE lagged IN EXCLUSIVE MODE" -c "SELECT pg_sleep(3)" \
    -c "COMMIT" >/dev/null 2>&1 &
locker=$!
sleep 0.5 # the lock is taken
it_status_mark
t0=$(it_now_ms)
lag_out=$(psql_proxy "$DB" -tA -c "BEGIN" -c "INSERT INTO lagged VALUES (1)" \
    -c "SELECT 'lag:' || m.v || ':' || (SELECT count(*) FROM lagged) FROM marker m" -c "COMMIT" 2>&1)
on_new=$(psql_new "$DB" -tA -c "SELECT count(*) FROM lagged")
it_log "the transaction took $(($(it_now_ms) - t0)) ms"
assert_contains "$lag_out" "lag:old:1" "the read waiting for a lagging new is answered by old, with the transaction's write"
assert_delta fallbacks_timeout -eq 1 "it counts as a timed-out fallback"
assert_eq "1" "$on_new" "COMMIT was answered only once new had the write too"
wait "$locker" || true

it_proxy_stop
