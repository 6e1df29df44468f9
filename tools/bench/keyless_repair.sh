#!/usr/bin/env bash
# tools/bench/keyless_repair.sh [ROWS] [CHANGED]: time of pgdual-verify --live --repair --apply on a
# keyless table of ROWS rows (default 200000) of which CHANGED (default 2000) differ on new (a
# timestamp moved by 1 ms: each is one surplus copy on new and one missing copy), on its own
# scratch pair of clusters (tests/harness/pgcluster.sh), then a plain verify that must exit 0.
# PGDUAL_VERIFY_BIN overrides build/tools/pgdual-verify.
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-200000} changed=${2:-2000}
bin=${PGDUAL_VERIFY_BIN:-build/tools/pgdual-verify}
[[ -x $bin ]] || bin=build/pgdual-verify
tmp=$(mktemp -d /tmp/pgdual-keyless.XXXXXX)
trap 'tests/harness/pgcluster.sh stop "$tmp/pg" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
tests/harness/pgcluster.sh start "$tmp/pg" >/dev/null
# shellcheck disable=SC1091
source "$tmp/pg/cluster.env"
q() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }
for port in "$OLD_PORT" "$NEW_PORT"; do
    q "$port" "CREATE TABLE h (tid int, delta int, mtime timestamptz);
        INSERT INTO h SELECT g % 100, g, '2026-01-01'::timestamptz + g * interval '1 s'
        FROM generate_series(1, $rows) g; ANALYZE h"
done
q "$NEW_PORT" "UPDATE h SET mtime = mtime + interval '1 ms' WHERE delta <= $changed"
old="host=127.0.0.1 port=$OLD_PORT user=postgres dbname=postgres"
new="host=127.0.0.1 port=$NEW_PORT user=postgres dbname=postgres"
start=$(date +%s.%N)
"$bin" --old "$old" --new "$new" --tables h --live --repair --apply --no-progress >"$tmp/live.out" 2>&1 ||
    { cat "$tmp/live.out"; exit 1; }
end=$(date +%s.%N)
"$bin" --old "$old" --new "$new" --tables h >/dev/null 2>&1 || { echo "verify after the repair differs"; exit 1; }
awk -v s="$start" -v e="$end" -v r="$rows" -v c="$changed" \
    'BEGIN { printf "keyless table of %d rows, %d changed on new: --live --repair --apply %.1f s; verify after: identical\n", r, c, e - s }'
