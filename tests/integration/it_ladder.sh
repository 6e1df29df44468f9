#!/usr/bin/env bash
# tests/integration/it_ladder.sh: the cutover ladder walked from the admin console while pgbench
# TPC-B runs with 8 clients through pgdual: observe -> ramp 0/25/100 -> promote -> rollback ->
# promote again, without PAUSE: pgdual itself keeps sessions on different primaries from running
# at once (no cross-server lock cycle). Zero client errors; reads really went to new during the
# ramp; every pgbench table identical on both sides afterwards; after promotion new answers and
# writes reach both.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

it_via_proxy || it_skip "the ladder exists only in pgdual (PGDUAL_TEST_DIRECT=1)"
it_mirrors || it_skip "the ladder needs both backends (PGDUAL_MIRRORS=0)"

DB=it_ladder
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start
status_value() { psql_admin "SHOW STATUS" | awk -F'|' -v k="$1" '$1 == k { print $2 }'; }
same_table() { # TABLE COLUMNS ORDER
    local sql="COPY (SELECT $2 FROM $1 ORDER BY $3) TO STDOUT"
    assert_eq "$(psql_old "$DB" -tA -c "$sql" | md5sum)" "$(psql_new "$DB" -tA -c "$sql" | md5sum)" \
        "$1 identical on old and new"
}

pgbench -i -s 1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres "$DB" >"$IT_TMP/init.out" 2>&1 ||
    it_fail "pgbench -i through pgdual: $(tail -n 5 "$IT_TMP/init.out")"
pgbench -n -M prepared -c 8 -j 2 -T 26 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres "$DB" \
    >"$IT_TMP/run.out" 2>&1 &
bench=$!

# step ADMIN-COMMAND...: run each, all must succeed.
step() {
    local c
    for c in "$@"; do
        assert_ok "$c" -- psql_admin "$c"
    done
}
sleep 3 # 0 observe: reads on old, shadowed on new (compare_percent = 100)
new_before=$(status_value reads_served_new)
step "SET read_new_percent = 25" # 1 ramp
sleep 3
step "SET read_new_percent = 100"
sleep 3
new_ramp=$(status_value reads_served_new)
if ((new_ramp > new_before)); then it_pass "the ramp served reads from new ($((new_ramp - new_before)))"; else it_failed "no read served by new during the ramp"; fi
step "SET primary = new" # 2 promote
sleep 4
assert_eq "new" "$(status_value primary)" "promoted"
step "ROLLBACK CUTOVER" # rollback
sleep 4
assert_eq "old" "$(status_value primary)" "rolled back"
assert_eq "0" "$(status_value read_new_percent)" "rollback set read_new_percent = 0"
step "SET read_new_percent = 100" "SET primary = new" # promote again
rc=0
wait "$bench" || rc=$? # not a bare wait: pgdual is a background job of this shell too
assert_eq "0" "$rc" "pgbench TPC-B exits 0 through the whole ladder"
assert_match "$(cat "$IT_TMP/run.out")" "number of failed transactions: 0 " "zero failed transactions"
assert_not_contains "$(cat "$IT_TMP/run.out")" "ERROR" "no client error"
it_log "$(grep -E '^(number of transactions actually processed|tps)' "$IT_TMP/run.out" | tr '\n' ' ')"

switched=$(grep -c "primary is now new for this session" "$PROXY_LOG" || true)
if ((switched >= 8)); then it_pass "the 8 open pgbench sessions followed the promotions ($switched switches)"; else it_failed "only $switched session switches to new in the log"; fi
if (($(status_value mirrored_served_new) > 0)); then it_pass "writes were served by new as primary"; else it_failed "no write served by new"; fi

same_table pgbench_accounts "*" aid
same_table pgbench_branches "*" bid
same_table pgbench_tellers "*" tid
same_table pgbench_history "*" "tid, bid, aid, delta, mtime" # mtime too: pinned from the primary

# After the promotion: a write through pgdual is on both; new is what clients read.
assert_ok "insert after promotion" -- psql_proxy "$DB" -c "INSERT INTO pgbench_branches VALUES (99, 0, 'ladder')"
for side in psql_old psql_new; do
    assert_eq "ladder" "$($side "$DB" -tA -c "SELECT trim(filler) FROM pgbench_branches WHERE bid = 99")" \
        "the row inserted through pgdual is on $side"
done
psql_new "$DB" -c "UPDATE pgbench_branches SET filler = 'changed on new' WHERE bid = 99" >/dev/null
assert_eq "changed on new" "$(psql_proxy "$DB" -tA -c "SELECT trim(filler) FROM pgbench_branches WHERE bid = 99")" \
    "clients read new's row"
it_proxy_stop
