#!/usr/bin/env bash
# tests/integration/it_reconcile_race.sh: the live repair racing clients (issue 13).
#
# 8 pgbench clients write random INSERT / INSERT ... ON CONFLICT DO UPDATE / UPDATE / DELETE (one
# or two rows, autocommit) on keys 1..2000 of one table through pgdual (lockstep, default config);
# meanwhile `pgdual-verify --live --repair --apply --repair-log` passes run over that table in a
# loop, straight against old and new.
#
# Lockstep orders conflicting writes on rows that exist; it cannot order a fresh key's INSERT
# against another session's UPDATE/DELETE of that key: the insert runs in pgdual's transaction
# on old (invisible to the other session there) but commits on new first, so the other write can
# see the row on new and not on old. pgdual sees that as a tag mismatch (`UPDATE 0` vs
# `UPDATE 1`) and logs a divergence; the rows of that key may really differ until written
# again. So a repair is legitimate only on a key pgdual logged a divergence for (with
# log_literals = on the log names the key) or, in phase 2, a planted key.
#
# The writes are autocommit statements: no explicit transactions. Once a row exists on new only
# (the race above, or a plant), a transaction that holds new's lock on it (its UPDATE found the
# row on new, none on old) and waits for old's lock of another transaction that waits for that
# row on new is a lock cycle across the two servers: neither detects it and pgdual waits forever
# (phase 2 hung that way with two-statement transactions). Autocommit statements never hold a lock
# on new while they wait on old, so they cannot close such a cycle.
#
#   phase 1, nothing planted: after the load one more live pass, then a plain verify finds 0
#     differences, and every key in the repair logs is one pgdual logged a divergence on (no row
#     that was equal under the locks was repaired).
#   phase 2, divergences planted straight on new during the load (rows deleted, updated,
#     inserted) over keys the clients never touch (2001..) and keys they do: after one more pass
#     a plain verify finds 0 differences, each planted untouched key is in the repair log with
#     the action that undoes its plant, and every key in the logs is planted or diverged.
#
# Environment: PGDUAL_VERIFY_BIN (default: pgdual-verify next to PGDUAL_BIN),
# PGDUAL_RACE_SECONDS (load per phase, default 10).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"

DB=$IT_NAME
VERIFY=${PGDUAL_VERIFY_BIN:-$(dirname "$PGDUAL_BIN")/pgdual-verify}
LOAD_S=${PGDUAL_RACE_SECONDS:-10}
CLIENTS=8
[[ -x "$VERIFY" ]] || it_fail "pgdual-verify binary $VERIFY not found"
OLD_CI="host=127.0.0.1 port=$OLD_PORT user=postgres dbname=$DB"
NEW_CI="host=127.0.0.1 port=$NEW_PORT user=postgres dbname=$DB"

it_createdb "$DB"
# Keys 1..2000 are the clients' (a third of them absent at first, so inserts insert); keys
# 2001..3000 are never written by a client.
SETUP="CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, note text);
INSERT INTO t SELECT g, g, 'seed' FROM generate_series(1, 3000) g WHERE g % 3 <> 0 OR g > 2000;"
psql_old "$DB" -c "$SETUP"
psql_new "$DB" -c "$SETUP"
# No automatic pass (where pgdual has one): its repairs would not be in this test's logs, and it
# would cover `*`, other tests' databases included.
auto=()
if "$PGDUAL_BIN" --config-reference | grep -qw reconcile_auto; then
    auto=(reconcile_auto=off)
fi
it_proxy_start cutover.mirror_order=lockstep log_literals=on "${auto[@]}"

cat >"$IT_TMP/race.sql" <<'SQL'
\set k random(1, 2000)
\set k2 random(1, 1999)
\set v random(1, 1000000)
\set k3 :k2 + 1
\set op random(1, 6)
\if :op = 1
INSERT INTO t (id, v, note) VALUES (:k, :v, 'ins') ON CONFLICT (id) DO NOTHING;
\elif :op = 2
INSERT INTO t (id, v, note) VALUES (:k, :v, 'ups') ON CONFLICT (id) DO UPDATE SET v = excluded.v, note = 'ups';
\elif :op = 3
UPDATE t SET v = v + 1, note = 'upd' WHERE id = :k;
\elif :op = 4
DELETE FROM t WHERE id = :k;
\elif :op = 5
UPDATE t SET v = v + 7, note = 'multi' WHERE id IN (:k2, :k3);
\else
INSERT INTO t (id, v, note) VALUES (:k2, :v, 'multi'), (:k3, :v, 'multi') ON CONFLICT (id) DO UPDATE SET v = t.v + 1, note = 'multi';
\endif
SQL

# repair_loop PHASE: live repair passes over t until $IT_TMP/stop.PHASE exists; pass i logs to
# PHASE.log.i, prints to PHASE.out.i, and appends "i exit-status" to PHASE.rcs.
repair_loop() {
    local phase=$1 i=0 rc
    while [[ ! -e "$IT_TMP/stop.$phase" ]]; do
        i=$((i + 1))
        rc=0
        "$VERIFY" --old "$OLD_CI" --new "$NEW_CI" --tables t --live --repair --apply --no-progress \
            --repair-log "$IT_TMP/$phase.log.$i" >"$IT_TMP/$phase.out.$i" 2>&1 || rc=$?
        echo "$i $rc" >>"$IT_TMP/$phase.rcs"
    done
}

# run_phase PHASE [PLANT_SQL_FILE]: load + repair loop (+ the plants, straight on new).
run_phase() {
    local phase=$1 plants=${2:-} loop_pid bench_pid plant_pid="" rc out
    : >"$IT_TMP/$phase.rcs"
    repair_loop "$phase" &
    loop_pid=$!
    pgbench -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -n -M simple -c "$CLIENTS" -j 2 \
        -T "$LOAD_S" --max-tries=10 -f "$IT_TMP/race.sql" "$DB" >"$IT_TMP/$phase.bench" 2>&1 &
    bench_pid=$!
    if [[ -n "$plants" ]]; then
        psql_new "$DB" -f "$plants" >"$IT_TMP/$phase.plants.out" 2>&1 &
        plant_pid=$!
    fi
    rc=0
    wait "$bench_pid" || rc=$?
    out=$(cat "$IT_TMP/$phase.bench")
    assert_eq 0 "$rc" "$phase: pgbench ($CLIENTS clients, ${LOAD_S}s) exit status"
    assert_match "$out" "number of failed transactions: 0 " "$phase: no failed transaction"
    assert_match "$out" "number of transactions actually processed: [1-9][0-9]{2,}" \
        "$phase: pgbench processed at least 100 transactions"
    if [[ -n "$plant_pid" ]]; then
        rc=0
        wait "$plant_pid" || rc=$?
        assert_eq 0 "$rc" "$phase: the plants ran on new"
    fi
    touch "$IT_TMP/stop.$phase"
    wait "$loop_pid"
    # The loop starts before pgbench and its last run ends after it: every run but possibly the
    # last overlapped the load (how many fit in it depends on the machine).
    it_log "$phase: $(wc -l <"$IT_TMP/$phase.rcs") live repair runs, $(cat "$IT_TMP/$phase".out.* |
        grep -c '^pass [0-9]*:') passes during the load; $(grep -o 'processed: [0-9/]*' "$IT_TMP/$phase.bench")"
    assert_match "$(wc -l <"$IT_TMP/$phase.rcs")" "^[1-9][0-9]*$" \
        "$phase: live repair runs overlapped the load"
    assert_eq "" "$(awk '$2 >= 2 { print }' "$IT_TMP/$phase.rcs")" \
        "$phase: no live repair run ended in an error (exit 2)"
    local bad_run
    bad_run=$(awk '$2 >= 2 { print $1; exit }' "$IT_TMP/$phase.rcs")
    [[ -z "$bad_run" ]] || it_log "$phase: run $bad_run: $(tail -c 1500 "$IT_TMP/$phase.out.$bad_run")"
}

# plain_verify NAME: a read-only verify of t must exit 0.
plain_verify() {
    local rc=0
    "$VERIFY" --old "$OLD_CI" --new "$NEW_CI" --tables t --no-progress \
        --json "$IT_TMP/$1.json" >"$IT_TMP/$1.out" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$1: plain verify exits 0 (0 differences)"
    ((rc == 0)) || it_log "$1: $(tail -c 1500 "$IT_TMP/$1.out")"
}

# last_pass PHASE: the live pass after the load (the loop's last pass may predate the load's
# last divergence), then a plain verify.
last_pass() {
    local rc=0
    "$VERIFY" --old "$OLD_CI" --new "$NEW_CI" --tables t --live --repair --apply --no-progress \
        --repair-log "$IT_TMP/$1.log.final" >"$IT_TMP/$1.final.out" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$1: the live repair run after the load exits 0"
    ((rc == 0)) || it_log "$1 last run: $(tail -c 1500 "$IT_TMP/$1.final.out")"
    plain_verify "$1.verify"
    cat "$IT_TMP/$1".log.* >"$IT_TMP/$1.log" 2>/dev/null || true
}

# check_log PHASE [PLANTED_FILE]: the repair log against the divergence log (and the plants).
check_log() {
    local out rc=0
    out=$(python3 "$IT_TMP/check.py" "$IT_TMP/$1.log" "$IT_TMP/divergences.jsonl" "${2:-}") || rc=$?
    it_log "$1 repair log: $out"
    assert_eq 0 "$rc" "$1: every repaired key was diverged${2:+ or planted, every planted untouched key repaired}"
    REPAIRED_KEYS=$(sed -n 's/^logged keys \([0-9]*\).*/\1/p' <<<"$out")
}

cat >"$IT_TMP/check.py" <<'PY'
import json, re, sys
log, divlog, plantfile = sys.argv[1], sys.argv[2], sys.argv[3]
diverged = set()
for line in open(divlog):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("database") != "it_reconcile_race":
        continue
    st = r.get("statement", "")
    for a, b in re.findall(r"id = (\d+)|\((\d+), ", st):
        diverged.add(a or b)
    for m in re.finditer(r"id IN \(([\d, ]+)\)", st):
        diverged.update(x.strip() for x in m.group(1).split(","))
planted = {}
if plantfile:
    for line in open(plantfile):
        k, want = line.split()
        planted[k] = want
seen = {}  # key -> set of actions
bad = []
for n, line in enumerate(open(log), 1):
    line = line.strip()
    if not line:
        continue
    try:
        r = json.loads(line)
    except ValueError:
        bad.append("line %d is not JSON: %s" % (n, line[:200]))
        continue
    if r.get("table") != "public.t" or r.get("action") not in ("insert", "update", "delete"):
        bad.append("line %d: unexpected table/action: %s" % (n, line[:300]))
        continue
    k = str((r.get("key") or {}).get("id"))
    if k not in planted and k not in diverged:
        bad.append("line %d: key %s repaired, neither planted nor diverged: %s" % (n, k, line[:300]))
        continue
    seen.setdefault(k, set()).add(r["action"])
    if r["action"] == "update" and planted.get(k) == "update" and "v" not in r.get("columns", []):
        bad.append("line %d: update of %s names columns %r, not v" % (n, k, r.get("columns")))
missing = [k for k, want in planted.items() if want != "any" and want not in seen.get(k, ())]
if missing:
    bad.append("planted untouched keys not repaired as expected: " +
               ", ".join("%s (%s, logged %s)" % (k, planted[k], sorted(seen.get(k, ())))
                         for k in sorted(missing, key=int)))
print("logged keys %d (%d planted, %d diverged of %d pgdual logged); problems: %d" % (
    len(seen), sum(1 for k in seen if k in planted), sum(1 for k in seen if k in diverged),
    len(diverged), len(bad)))
for b in bad[:20]:
    print(b)
sys.exit(1 if bad else 0)
PY

# --- phase 1: nothing planted: only rows pgdual saw diverge may be repaired ------------------
run_phase p1
last_pass p1
check_log p1
it_log "p1: secondary_state $(it_status secondary_state), divergences_total $(it_status divergences_total)"

# --- phase 2: plants on new, over untouched keys and the clients' keys -----------------------
# Untouched keys (2001..3000 exist on both sides, 3001.. on neither): 10 deleted, 10 updated,
# 10 inserted. The clients' keys: 10 of each too. One statement per 0.1 s, straight on new.
RANDOM=13
declare -A planted=() # key -> expected action (or "any" for the clients' keys)
plants=()
for i in $(seq 0 9); do
    planted[$((2003 + i * 11))]=insert
    plants+=("DELETE FROM t WHERE id = $((2003 + i * 11));")
    planted[$((2500 + i * 7))]=update
    plants+=("UPDATE t SET v = -v, note = 'planted' WHERE id = $((2500 + i * 7));")
    planted[$((3001 + i))]=delete
    plants+=("INSERT INTO t (id, v, note) VALUES ($((3001 + i)), -1, 'planted');")
    for op in del upd ins; do
        k=$((1 + RANDOM % 2000))
        while [[ -n "${planted[$k]:-}" ]]; do k=$((1 + RANDOM % 2000)); done
        planted[$k]=any
        case $op in
        del) plants+=("DELETE FROM t WHERE id = $k;") ;;
        upd) plants+=("UPDATE t SET v = -v - 5, note = 'planted' WHERE id = $k;") ;;
        ins) plants+=("INSERT INTO t (id, v, note) VALUES ($k, -2, 'planted') ON CONFLICT (id) DO NOTHING;") ;;
        esac
    done
done
{
    echo "SELECT pg_sleep(0.5);"
    for s in "${plants[@]}"; do
        echo "$s"
        echo "SELECT pg_sleep(0.1);"
    done
} >"$IT_TMP/plants.sql"
for k in "${!planted[@]}"; do echo "$k ${planted[$k]}"; done | sort -n >"$IT_TMP/planted.txt"

run_phase p2 "$IT_TMP/plants.sql"
last_pass p2
check_log p2 "$IT_TMP/planted.txt"
assert_match "$REPAIRED_KEYS" "^([3-9][0-9]|[1-9][0-9]{2,})$" "p2: at least 30 keys in the repair log"

it_proxy_stop
