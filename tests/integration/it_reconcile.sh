#!/usr/bin/env bash
# tests/integration/it_reconcile.sh: the reconciliation commands of the admin console (issue 13):
# SEED (writes new applies to fewer rows counted in seed_skipped_total, no read served by new),
# RECONCILE START / PROGRESS / DONE / ABORT and their refusals, a DONE made stale by a miss during
# the pass, and the state and pass ids across a kill -9 of pgdual.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_reconcile
it_createdb "$DB"
it_proxy_start cutover.read_new_percent=100 cutover.compare_percent=100
psql_proxy "$DB" -q -c "CREATE TABLE t (id int PRIMARY KEY, v int)"

assert_eq "in_sync|0|none|0" \
    "$(it_status secondary_state)|$(it_status reconcile_pass)|$(it_status reconcile_last_result)|$(it_status sessions_without_secondary)" \
    "in_sync, no pass, nothing without its secondary"
assert_fails "RECONCILE START refused while in_sync" -- psql_admin "RECONCILE START"
assert_contains "$IT_LAST_OUT" "nothing to reconcile" "the refusal says why"

# SEED: rows old has and new has not yet are expected.
assert_eq "SEED" "$(psql -X -h 127.0.0.1 -p "$PROXY_PORT" -U admin -d pgdual -c SEED 2>&1)" "SEED answers its tag"
assert_eq "seeding|*" "$(it_status secondary_state)|$(it_status reconcile_tables)" "seeding, every table listed"
psql_old "$DB" -c "INSERT INTO t SELECT g, 0 FROM generate_series(1, 10) g"
it_status_mark
assert_eq "UPDATE 1" "$(psql_proxy "$DB" -c "UPDATE t SET v = 1 WHERE id = 1")" "an update of a row not copied yet"
assert_eq "DELETE 2" "$(psql_proxy "$DB" -c "DELETE FROM t WHERE id IN (2, 3)")" "a delete of rows not copied yet"
assert_eq "8" "$(psql_proxy "$DB" -tA -c "SELECT count(*) FROM t WHERE id > 0")" "reads are served by old"
assert_delta seed_skipped_total -eq 2 "both counted as seed skips"
assert_delta divergences_total -eq 0 "not as divergences"
assert_delta reads_served_new -eq 0 "no read served by new while seeding"
assert_delta shadow_compares_total -eq 0 "no shadow compare while seeding"
assert_eq "seeding" "$(it_status secondary_state)" "still seeding"

# A pass: START, PROGRESS, a second START refused.
row=$(psql_admin "RECONCILE START")
assert_eq "1|old|seeding|*" "$row" "RECONCILE START: pass 1 over every table, from seeding"
assert_eq "reconciling|1|running" \
    "$(it_status secondary_state)|$(it_status reconcile_pass)|$(it_status reconcile_last_result)" "reconciling pass 1"
assert_fails "a second START refused" -- psql_admin "RECONCILE START"
assert_contains "$IT_LAST_OUT" "pass 1 is running" "the refusal names the running pass"
assert_ok "RECONCILE PROGRESS" -- psql_admin "RECONCILE PROGRESS 1 3 5 7"
assert_eq "3|5|7" "$(it_status reconcile_tables_done)|$(it_status reconcile_tables_total)|$(it_status reconcile_rows_repaired)" \
    "PROGRESS shows in SHOW STATUS"
assert_fails "PROGRESS of another pass refused" -- psql_admin "RECONCILE PROGRESS 9 1 1 1"

# A write that fails on new only during the pass: the pass is stale, its DONE refused.
psql_old "$DB" -c "DELETE FROM t"
psql_new "$DB" -c "INSERT INTO t VALUES (100, 0)"
assert_eq "INSERT 0 1" "$(psql_proxy "$DB" -c "INSERT INTO t VALUES (100, 1)")" "the client's insert succeeds on old"
assert_eq "diverged|stale|0" \
    "$(it_status secondary_state)|$(it_status reconcile_last_result)|$(it_status reconcile_pass)" "the miss made the pass stale"
assert_fails "DONE of the stale pass refused" -- psql_admin "RECONCILE DONE 1"
assert_contains "$IT_LAST_OUT" "pass 1 is stale" "the refusal says the pass is stale"
assert_eq "diverged" "$(it_status secondary_state)" "still diverged"

# ABORT, then a pass that ends in_sync.
assert_eq "2|old|diverged" "$(psql_admin "RECONCILE START" | cut -d'|' -f1-3)" "pass 2 from diverged"
assert_ok "RECONCILE ABORT 2" -- psql_admin "RECONCILE ABORT 2"
assert_eq "diverged|aborted|0" \
    "$(it_status secondary_state)|$(it_status reconcile_last_result)|$(it_status reconcile_pass)" "ABORT: back to diverged"
assert_fails "ABORT of no running pass refused" -- psql_admin "RECONCILE ABORT 2"
psql_new "$DB" -c "DELETE FROM t WHERE id = 100; INSERT INTO t VALUES (100, 1)"
assert_eq "3" "$(psql_admin "RECONCILE START" | cut -d'|' -f1)" "pass 3"
assert_ok "RECONCILE DONE 3" -- psql_admin "RECONCILE DONE 3"
assert_eq "in_sync|in_sync||0|3" \
    "$(it_status secondary_state)|$(it_status reconcile_last_result)|$(it_status reconcile_tables)|$(it_status reconcile_pass)|$(it_status reconcile_passes_total)" \
    "DONE: in_sync, the list cleared"
assert_fails "DONE twice refused" -- psql_admin "RECONCILE DONE 3"

# Across kill -9: the state survives; a pass running then is over (diverged), ids go on.
assert_ok "SEED again" -- psql_admin "SEED"
assert_eq "4" "$(psql_admin "RECONCILE START" | cut -d'|' -f1)" "pass 4"
assert_contains "$(cat "$IT_TMP/pgdual.state")" "secondary_state = reconciling" "the state file says reconciling"
kill -KILL "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null || true
PROXY_PID=""
it_proxy_start cutover.read_new_percent=100 cutover.compare_percent=100
assert_eq "diverged|*" "$(it_status secondary_state)|$(it_status reconcile_tables)" \
    "after the restart: diverged (the pass ended with the process), every table listed"
assert_fails "DONE of the pass begun before the restart refused" -- psql_admin "RECONCILE DONE 4"
assert_eq "5" "$(psql_admin "RECONCILE START" | cut -d'|' -f1)" "the next pass is 5"
assert_ok "RECONCILE DONE 5" -- psql_admin "RECONCILE DONE 5"
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync"
it_proxy_stop
it_proxy_start cutover.read_new_percent=100 cutover.compare_percent=100
assert_eq "in_sync" "$(it_status secondary_state)" "in_sync survives a restart"
it_proxy_stop
