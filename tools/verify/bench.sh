#!/usr/bin/env bash
# tools/verify/bench.sh: pgdual-verify vs. one in-database checksum query on pgbench_accounts.
# usage: bench.sh [SCALE] (default 100 = 10,000,000 rows). Needs OLD_PORT/NEW_PORT (or a
# cluster.env via PGDUAL_TEST_CLUSTER), PGHOST (default 127.0.0.1), PGUSER (default postgres),
# and the binary in PGDUAL_VERIFY_BIN (default build/pgdual-verify). Target: verify <= 1.5x.
set -euo pipefail
SCALE=${1:-100}
if [ -n "${PGDUAL_TEST_CLUSTER:-}" ]; then . "$PGDUAL_TEST_CLUSTER/cluster.env"; fi
: "${OLD_PORT:?set OLD_PORT}" "${NEW_PORT:?set NEW_PORT}"
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
BIN=${PGDUAL_VERIFY_BIN:-build/pgdual-verify}
DB=${BENCH_DB:-pgdual_bench_s$SCALE}
REF="SELECT count(*), sum(hashtextextended(a::text, 0)) FROM pgbench_accounts a"

now() { date +%s.%N; }
for port in "$OLD_PORT" "$NEW_PORT"; do
    if [ "$(psql -X -p "$port" -d postgres -Atc "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 0 ]; then
        createdb -p "$port" "$DB"
        echo "pgbench -i -s $SCALE on port $port ..." >&2
        pgbench -p "$port" -i -q -s "$SCALE" "$DB" >/dev/null 2>&1
        psql -X -q -p "$port" -d "$DB" -c "VACUUM ANALYZE pgbench_accounts"
    fi
done

# Warm both caches the same way for both measurements.
for port in "$OLD_PORT" "$NEW_PORT"; do psql -X -q -p "$port" -d "$DB" -Atc "$REF" >/dev/null; done

slow=0
for port in "$OLD_PORT" "$NEW_PORT"; do
    t0=$(now); psql -X -q -p "$port" -d "$DB" -Atc "$REF" >/dev/null; t1=$(now)
    t=$(echo "$t1 - $t0" | bc -l)
    printf 'reference query on port %s: %.2fs\n' "$port" "$t"
    if (( $(echo "$t > $slow" | bc -l) )); then slow=$t; fi
done

t0=$(now)
set +e
"$BIN" --old "host=$PGHOST port=$OLD_PORT dbname=$DB" --new "host=$PGHOST port=$NEW_PORT dbname=$DB" \
    --tables pgbench_accounts --no-progress --stats ${VERIFY_ARGS:-}
rc=$?
set -e
t1=$(now)
v=$(echo "$t1 - $t0" | bc -l)
ratio=$(echo "$v / $slow" | bc -l)
printf 'scale %s: verify %.2fs (exit %d), slower reference side %.2fs, ratio %.2f (target <= 1.50)\n' \
    "$SCALE" "$v" "$rc" "$slow" "$ratio"
