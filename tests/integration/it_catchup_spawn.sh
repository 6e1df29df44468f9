#!/usr/bin/env bash
# tests/integration/it_catchup_spawn.sh: pgdual's own catch-up (reconcile_auto) with a stand-in
# for pgdual-verify (verify_path): a write that fails on new only makes the state diverged; pgdual
# begins a pass by itself and runs the tool with the pass's arguments; the tool's progress lines
# show in SHOW STATUS; a failed run (exit 1) is retried after reconcile_interval_ms; exit 0 is the
# pass's DONE: in_sync. Then SEED: no automatic pass while seeding.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
it_mirrors || it_skip "needs pgdual with dual-write"

DB=it_catchup_spawn
it_createdb "$DB"
# The stand-in: records its arguments, prints progress, fails on its first run, and on the next
# one makes new equal (the row old has) before it exits 0.
TOOL="$IT_TMP/fake-verify.sh"
cat >"$TOOL" <<TOOL_EOF
#!/usr/bin/env bash
echo "\$*" >>"$IT_TMP/tool.args"
runs=\$(wc -l <"$IT_TMP/tool.args")
echo "progress: tables 1/2 rows_repaired 0"
if ((runs == 1)); then sleep 0.5; exit 1; fi
psql -X -q -h 127.0.0.1 -p $NEW_PORT -U postgres -d $DB -c "UPDATE t SET v = 1 WHERE id = 1" >/dev/null
echo "progress: tables 2/2 rows_repaired 1"
sleep 0.5
exit 0
TOOL_EOF
chmod +x "$TOOL"
it_proxy_start pgdual.reconcile_auto=on pgdual.reconcile_interval_ms=300 "pgdual.verify_path=$TOOL"
psql_proxy "$DB" -q -c "CREATE TABLE t (id int PRIMARY KEY, v int)"
psql_proxy "$DB" -q -c "INSERT INTO t VALUES (1, 0)"
assert_eq "in_sync|0" "$(it_status secondary_state)|$(it_status reconcile_passes_total)" "in_sync: no pass"

# A write that fails on new only (the row is locked there... here: a check new has and old lacks).
psql_new "$DB" -q -c "ALTER TABLE t ADD CONSTRAINT v_small CHECK (v < 1)"
assert_eq "UPDATE 1" "$(psql_proxy "$DB" -c "UPDATE t SET v = 1 WHERE id = 1")" "the client's update succeeds on old"
psql_new "$DB" -q -c "ALTER TABLE t DROP CONSTRAINT v_small"
in_sync() { [[ "$(it_status secondary_state)" == in_sync ]]; }
if it_wait_for 30 in_sync; then
    it_pass "pgdual's own passes brought new back to in_sync"
else
    it_failed "secondary_state is $(it_status secondary_state): $(tail -5 "$PROXY_LOG")"
fi
assert_eq "2" "$(wc -l <"$IT_TMP/tool.args")" "the tool ran twice (the first run failed)"
args=$(sed -n 2p "$IT_TMP/tool.args")
assert_contains "$args" "-c $(realpath "$IT_TMP/pgdual.ini") --live --repair --apply --no-progress --pgdual-pass 2" \
    "the tool gets the config, --live --repair --apply and the pass id"
assert_contains "$args" "--tables-db * --primary old" "and the tables to cover (all: the miss named none) and the primary"
assert_eq "2|in_sync|2|2|1" \
    "$(it_status reconcile_passes_total)|$(it_status reconcile_last_result)|$(it_status reconcile_tables_done)|$(it_status reconcile_tables_total)|$(it_status reconcile_rows_repaired)" \
    "two passes, the last in_sync, its progress lines in SHOW STATUS"
assert_eq "1" "$(psql_new "$DB" -tA -c "SELECT v FROM t WHERE id = 1")" "new holds old's value"
log=$(cat "$PROXY_LOG")
assert_contains "$log" "reconcile: pass 1 failed" "the log tells the failed pass"
assert_contains "$log" "reconcile: pass 2 ended in_sync" "and the pass that ended in_sync"

# While seeding the backfill is the operator's: no automatic pass.
assert_ok "SEED" -- psql_admin "SEED"
sleep 1 # a pass would have begun within reconcile_interval_ms: nothing must happen
assert_eq "seeding|2" "$(it_status secondary_state)|$(it_status reconcile_passes_total)" "no automatic pass while seeding"
it_proxy_stop
