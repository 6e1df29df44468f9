#!/usr/bin/env bash
# tests/integration/it_backfill.sh: the seed step (issue 13): a live backfill of an empty new.
#
# Old holds pgbench -s N (PGDUAL_BACKFILL_SCALE, default 2; the issue's figure is 20) plus a
# table keyed by (text, text) and a uuid-keyed table; new gets `pg_dump --schema-only` of it.
# pgdual in front, admin SEED; pgbench (8 clients, TPC-B mixed with writes on the two extra
# tables, -M simple and -M prepared by turns) runs through pgdual for the whole backfill. The
# backfill is `pgdual-verify -c pgdual.ini --live --repair --apply --resume FILE` (the admin user
# and its password come from the config's auth_file). It is killed (SIGKILL) once the resume
# file shows a finished range, and run again: it must resume, reconcile and end with exit 0.
# Then: secondary_state = in_sync, a plain verify of every table exits 0, no read went to new
# while seeding (read_new_percent = 100 all along), seed_skipped_total > 0 (the load updated rows
# before any was copied), every pgbench run exit 0 with no failed transaction.
#
# The backfill and its reconciliation pass cover every database (SEED's list is `*`), so this
# test runs its own pair of clusters rather than the shared fixture.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PGCLUSTER=$HERE/../harness/pgcluster.sh
BF_DIR=$(mktemp -d /tmp/pgdual-it_backfill-pg.XXXXXX)
chmod 0755 "$BF_DIR"
if ! bash "$PGCLUSTER" start "$BF_DIR/pg" >"$BF_DIR/pgcluster.out" 2>&1; then
    cat "$BF_DIR/pgcluster.out" >&2
    bash "$PGCLUSTER" stop "$BF_DIR/pg" >/dev/null 2>&1 || true
    rm -rf "$BF_DIR"
    echo "0 passed, 1 failed"
    exit 1
fi
export PGDUAL_TEST_CLUSTER=$BF_DIR/pg
# shellcheck source-path=SCRIPTDIR source=../harness/lib.sh
source "$HERE/../harness/lib.sh"

DB=$IT_NAME
SCALE=${PGDUAL_BACKFILL_SCALE:-2}
VERIFY=${PGDUAL_VERIFY_BIN:-$(dirname "$PGDUAL_BIN")/pgdual-verify}
LOAD_PID=""
[[ -x "$VERIFY" ]] || it_fail "pgdual-verify binary $VERIFY not found"

# stop_load: asks the load loop to stop after its current pgbench run and waits for it.
stop_load() {
    [[ -n "$LOAD_PID" ]] || return 0
    touch "$IT_TMP/load.stop"
    wait "$LOAD_PID" || true
    LOAD_PID=""
}

bf_cleanup() {
    local rc=$? child
    set +e
    trap - ERR
    if [[ -n "$LOAD_PID" ]]; then
        touch "$IT_TMP/load.stop"
        for child in $(pgrep -P "$LOAD_PID"); do kill -KILL "$child" 2>/dev/null; done
        kill -KILL "$LOAD_PID" 2>/dev/null
        wait "$LOAD_PID" 2>/dev/null
    fi
    [[ -z "$PROXY_PID" ]] || it_proxy_stop
    bash "$PGCLUSTER" stop "$BF_DIR/pg" >/dev/null 2>&1
    rm -rf "$BF_DIR"
    (exit "$rc")
    it_cleanup
}
trap bf_cleanup EXIT

# --- old: pgbench -s N + two tables with other keys; new: the schema only ----------------------
it_createdb "$DB"
pgbench -h 127.0.0.1 -p "$OLD_PORT" -U postgres -i -q -s "$SCALE" "$DB" >"$IT_TMP/init.out" 2>&1 ||
    it_fail "pgbench -i on old: $(tail -5 "$IT_TMP/init.out")"
psql_old "$DB" <<'SQL'
CREATE TABLE comp (region text, code text, qty int NOT NULL, note text, PRIMARY KEY (region, code));
INSERT INTO comp SELECT 'region-' || (g % 37), 'code-' || g, g, md5(g::text)
  FROM generate_series(1, 20000) g;
CREATE TABLE uu (id uuid PRIMARY KEY, v int NOT NULL, j jsonb);
INSERT INTO uu SELECT md5('u' || g)::uuid, g, jsonb_build_object('g', g, 'tag', 'it''s')
  FROM generate_series(1, 20000) g;
VACUUM ANALYZE;
SQL
pg_dump --schema-only -h 127.0.0.1 -p "$OLD_PORT" -U postgres "$DB" >"$IT_TMP/schema.sql"
psql_new "$DB" -f "$IT_TMP/schema.sql" >/dev/null
assert_eq 0 "$(psql_new "$DB" -tA -c 'SELECT count(*) FROM pgbench_accounts')" "new holds the schema only"

# --- pgdual; SEED; reads to new dialled to 100 % (none may go there while seeding) -------------
printf '%s\n"postgres" "x"\n' "$IT_ADMIN_LINE" >"$IT_TMP/userlist.txt"
auto=()
if "$PGDUAL_BIN" --config-reference | grep -qw reconcile_auto; then
    auto=(reconcile_auto=off) # the backfill's own passes are under test, not pgdual's
fi
# A fixed port: the backfill finds the admin console from the config (listen_addr, listen_port,
# the admin user's plain-text password in auth_file).
it_proxy_start "listen_port=$(it_free_port)" "auth_file=$IT_TMP/userlist.txt" "${auto[@]}"
assert_ok "admin SEED" -- psql_admin SEED
assert_eq seeding "$(it_status secondary_state)" "secondary_state = seeding"
it_dials read_new_percent=100
it_status_mark

# --- the load: pgbench by turns -M simple / -M prepared, 3 s a run, until load.stop exists ------
# Extra writes on comp/uu: upserts on even seed keys, deletes of odd ones, inserts of fresh keys
# nothing else touches (no fresh key is updated or deleted: lockstep cannot order that race).
cat >"$IT_TMP/extra.sql" <<'SQL'
\set g random(1, 10000)
\set r random(1, 1000000000)
\set op random(1, 4)
\if :op = 1
INSERT INTO comp VALUES ('region-' || (2 * :g) % 37, 'code-' || 2 * :g, 1, 'ups') ON CONFLICT (region, code) DO UPDATE SET qty = comp.qty + 1, note = 'ups';
\elif :op = 2
DELETE FROM comp WHERE region = 'region-' || (2 * :g - 1) % 37 AND code = 'code-' || 2 * :g - 1;
\elif :op = 3
INSERT INTO uu VALUES (md5('fresh' || :r)::uuid, :r, '{"fresh": true}') ON CONFLICT (id) DO NOTHING;
\else
UPDATE uu SET v = v + 1, j = j || '{"upd": 1}' WHERE id = md5('u' || 2 * :g)::uuid;
\endif
SQL
load_loop() {
    local n=0 mode
    while [[ ! -e "$IT_TMP/load.stop" ]]; do
        n=$((n + 1))
        mode=simple
        if ((n % 2 == 0)); then mode=prepared; fi
        pgbench -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -n -c 8 -j 2 -T 3 -M "$mode" \
            -b tpcb-like@9 -f "$IT_TMP/extra.sql@1" "$DB" >"$IT_TMP/load.$n.$mode" 2>&1 || true
        echo "$n $mode" >>"$IT_TMP/load.runs"
    done
}
load_loop &
LOAD_PID=$!

# Some TPC-B updates must reach new before anything is copied (seed_skipped_total > 0).
history_50() { [[ "$(psql_old "$DB" -tA -c 'SELECT count(*) >= 50 FROM pgbench_history')" == t ]]; }
it_wait_for 30 history_50 ||
    it_fail "the load wrote no 50 history rows within 30 s"

# --- the backfill, killed once it finished some range, then resumed ---------------------------
RESUME=$IT_TMP/backfill.resume
backfill() { # backfill NAME: one run in the background; BF_PID
    "$VERIFY" -c "$PROXY_INI" --live --repair --apply --no-progress --resume "$RESUME" \
        --json "$IT_TMP/$1.json" >"$IT_TMP/$1.out" 2>&1 &
    BF_PID=$!
}
# finished_ranges: how many ranges the resume file records as finished.
finished_ranges() {
    [[ -s "$RESUME" ]] || {
        echo 0
        return
    }
    grep -c '^done' "$RESUME" || true
}
t_run1=$SECONDS
backfill run1
killed=0
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
    if (($(finished_ranges) > 0)); then
        kill -KILL "$BF_PID" 2>/dev/null && killed=1
        break
    fi
    kill -0 "$BF_PID" 2>/dev/null || break
    sleep 0.02
done
rc=0
wait "$BF_PID" || rc=$?
assert_eq 1 "$killed" "the first backfill run was killed (SIGKILL) after $(finished_ranges) finished ranges"
((killed == 1)) || it_log "run1 (exit $rc): $(tail -c 1500 "$IT_TMP/run1.out")"
assert_eq seeding "$(it_status secondary_state)" "still seeding after the kill"
assert_delta reads_served_new -eq 0 "no read served by new while seeding"
before_resume=$(finished_ranges)
cp "$RESUME" "$IT_TMP/run1.resume"
it_log "run1 killed after $((SECONDS - t_run1)) s"

t_run2=$SECONDS
backfill run2
rc=0
wait "$BF_PID" || rc=$?
it_log "run2 took $((SECONDS - t_run2)) s: $(grep '^result' "$IT_TMP/run2.out" || true)"
assert_eq 0 "$rc" "the resumed backfill exits 0"
((rc == 0)) || it_log "run2: $(tail -c 3000 "$IT_TMP/run2.out")"
assert_eq in_sync "$(it_status secondary_state)" "secondary_state = in_sync after the backfill"
it_log "run2: $(grep -iE 'skip|resum|backfill|pass' "$IT_TMP/run2.out" | head -10 || true)"
# run2 copies only what run1 left: a table all of whose planned ranges run1 finished is not
# copied (nor planned) again; one with some finished resumes the others only.
again=""
while read -r t n d; do
    if ((d == n)); then
        ! grep -q "^backfill: $t:" "$IT_TMP/run2.out" || again+=" $t(copied again)"
    else
        grep -qF "backfill: $t: resuming $((n - d)) of $n range(s)" "$IT_TMP/run2.out" ||
            again+=" $t(not 'resuming $((n - d)) of $n')"
    fi
done < <(awk '$1 == "range" { r[$2]++ } $1 == "done" { d[$2]++ }
    END { for (t in d) print t, r[t], d[t] }' "$IT_TMP/run1.resume")
assert_eq "" "$again" "run2 resumed: no range run1 finished was copied again"
it_log "resume file: $before_resume finished ranges after run1, $(finished_ranges) after run2"

skipped=$(it_status seed_skipped_total)
assert_match "$skipped" "^[1-9][0-9]*$" "seed_skipped_total > 0 (updates of rows not copied yet)"

# --- the load ends; everything equal and still in_sync ----------------------------------------
stop_load
runs=$(wc -l <"$IT_TMP/load.runs")
assert_match "$runs" "^([2-9]|[1-9][0-9]+)$" "the load ran pgbench at least twice (simple and prepared)"
bad_runs=""
for f in "$IT_TMP"/load.*.simple "$IT_TMP"/load.*.prepared; do
    [[ -e "$f" ]] || continue
    if ! grep -q "number of failed transactions: 0 " "$f" || grep -q "aborted" "$f"; then
        bad_runs+=" $(basename "$f")"
        it_log "$(basename "$f"): $(tail -c 1000 "$f")"
    fi
done
assert_eq "" "$bad_runs" "every pgbench run: no failed or aborted transaction"
it_log "load: $runs pgbench runs, $(cat "$IT_TMP"/load.[0-9]*.* | grep -o 'processed: [0-9]*' | awk '{ s += $2 } END { print s }') transactions"

rc=0
"$VERIFY" --old "host=127.0.0.1 port=$OLD_PORT user=postgres dbname=$DB" \
    --new "host=127.0.0.1 port=$NEW_PORT user=postgres dbname=$DB" --no-progress \
    >"$IT_TMP/verify.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "plain verify of every table exits 0"
((rc == 0)) || it_log "$(tail -c 2000 "$IT_TMP/verify.out")"
assert_eq "$(psql_old "$DB" -tA -c 'SELECT count(*) FROM pgbench_accounts')" \
    "$(psql_new "$DB" -tA -c 'SELECT count(*) FROM pgbench_accounts')" "pgbench_accounts: as many rows on new as on old"
assert_eq in_sync "$(it_status secondary_state)" "still in_sync after the load"
it_proxy_stop
