#!/usr/bin/env bash
# tools/bench/pin_check.sh PORT [ROUNDS]: what the table check in pinning's RETURNING costs on a
# PostgreSQL server (127.0.0.1:PORT, user postgres): a DO loop of 5,000 single-row UPDATEs of a
# 200,000-row table, each parsed and planned again (EXECUTE, as the simple protocol does), with
# pgdual's JSON column alone and with the check (protocol/pin_sql.c put_same_table; the text
# unit.pin_shape asserts). Prints milliseconds per statement for each, round by round. Makes and
# drops the database bench_pin_check.
#
#   tools/bench/pin_check.sh 5432 3
set -euo pipefail
(($# >= 1)) || {
    echo "usage: tools/bench/pin_check.sh PORT [ROUNDS]" >&2
    exit 2
}
port=$1 rounds=${2:-3} db=bench_pin_check n=5000
sql() { psql -h 127.0.0.1 -p "$port" -U postgres -X -qAt "$@"; }
sql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'sql -d postgres -c "DROP DATABASE IF EXISTS $db"' EXIT
pgbench -h 127.0.0.1 -p "$port" -U postgres -i -s 2 -q "$db" >/dev/null 2>&1
upd="UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = ' || (1 + i * 37 % 199999) || ' RETURNING pg_catalog.to_json(\"pgbench_accounts\".*)"
named="(SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname = E''pgbench_accounts'' AND pg_catalog.pg_table_is_visible(c.oid))"
check="\"pgbench_accounts\".tableoid = $named OR \"pgbench_accounts\".tableoid IN (WITH RECURSIVE \"pgdual_tree\"(o) AS (SELECT $named UNION ALL SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN \"pgdual_tree\" ON i.inhparent = \"pgdual_tree\".o) SELECT o FROM \"pgdual_tree\")"
per_stmt() { # the loop's milliseconds per statement
    local t
    t=$(sql -d "$db" -c '\timing on' -c "DO \$\$BEGIN FOR i IN 1..$n LOOP EXECUTE '$1'; END LOOP; END\$\$" |
        awk '/^Time:/ {print $2}')
    awk -v t="$t" -v n="$n" 'BEGIN {printf "%.3f", t / n}'
}
echo "round  json_only_ms  with_check_ms"
for r in $(seq "$rounds"); do
    a=$(per_stmt "$upd")
    c=$(per_stmt "$upd, $check")
    echo "$r      $a         $c"
done
