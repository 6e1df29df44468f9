#!/usr/bin/env bash
# tests/integration/it_pgbench.sh: pgbench -i and TPC-B runs through pgdual in the simple,
# extended and prepared query protocols; no failed transaction, every history row on old (and
# mirrored to new), and both sides' balances equal.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

DB=it_pgbench
CLIENTS=4
TX_PER_CLIENT=150
it_createdb "$DB"
# shellcheck disable=SC2119 # no ini overrides
it_proxy_start

bench() {
    pgbench -h 127.0.0.1 -p "$PROXY_PORT" -U postgres "$@" "$DB"
}

if bench -i -s 1 >"$IT_TMP/init.out" 2>&1; then
    it_pass "pgbench -i -s 1 through pgdual"
else
    it_fail "pgbench -i failed: $(tail -n 20 "$IT_TMP/init.out")"
fi
assert_eq "100000" "$(psql_old "$DB" -tA -c 'SELECT count(*) FROM pgbench_accounts')" \
    "pgbench_accounts loaded on old"
if it_mirrors; then
    assert_eq "100000" "$(psql_new "$DB" -tA -c 'SELECT count(*) FROM pgbench_accounts')" \
        "pgbench_accounts mirrored to new"
fi

expected_history=0
for mode in simple extended prepared; do
    rc=0
    bench -M "$mode" -c "$CLIENTS" -j 2 -t "$TX_PER_CLIENT" -n >"$IT_TMP/run-$mode.out" 2>&1 || rc=$?
    out=$(cat "$IT_TMP/run-$mode.out")
    assert_eq "0" "$rc" "pgbench -M $mode exit status"
    assert_match "$out" "number of failed transactions: 0 " "pgbench -M $mode: no failed transaction"
    total=$((CLIENTS * TX_PER_CLIENT))
    assert_contains "$out" "number of transactions actually processed: $total/$total" \
        "pgbench -M $mode: all transactions processed"
    expected_history=$((expected_history + total))
    assert_eq "$expected_history" \
        "$(psql_old "$DB" -tA -c 'SELECT count(*) FROM pgbench_history')" \
        "pgbench_history rows on old after -M $mode"
done

# TPC-B keeps the books: every delta in history is in the account, teller and branch balances.
sums="SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ':' ||
             (SELECT sum(tbalance) FROM pgbench_tellers) || ':' ||
             (SELECT sum(bbalance) FROM pgbench_branches) || ':' ||
             (SELECT coalesce(sum(delta), 0) FROM pgbench_history)"
old_sums=$(psql_old "$DB" -tA -c "$sums")
IFS=: read -r a t b h <<<"$old_sums"
assert_eq "$h:$h:$h" "$a:$t:$b" "balances on old match the history deltas"
if it_mirrors; then
    assert_eq "$expected_history" \
        "$(psql_new "$DB" -tA -c 'SELECT count(*) FROM pgbench_history')" \
        "pgbench_history rows on new (mirrored)"
    assert_eq "$old_sums" "$(psql_new "$DB" -tA -c "$sums")" "new's balances equal old's"
fi

it_proxy_stop
