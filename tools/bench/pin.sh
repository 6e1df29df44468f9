# shellcheck shell=bash
# tools/bench/pin.sh: the pinning phase of tools/bench/run.sh (sourced by it; uses its helpers):
# TPC-B through one pgdual (mirror_order = lockstep, commit_wait = both) with pin_writes = on and
# = off, -M simple and -M prepared, interleaved. Issue 12's target: pinning on >= 0.9x off.
#
# Database bench_pin on old and new, made by pgbench -i through that pgdual (pgdual-pin). Before
# each run, straight to each cluster and outside the measured window: VACUUM branches/tellers,
# TRUNCATE history. pin_writes is SET with the admin console before each run; the order of the
# (mode, setting) runs rotates by one per round. After each pin_writes = on run pgbench_history
# (with its mtime) is compared on old and new, also outside the measured window. A build without
# the pin_writes dial runs both settings as today's verbatim mirroring, and the report says so.

PIN_DB=bench_pin

# Does this pgdual build have the [cutover] pin_writes dial?
pgdual_has_pin_dial() {
    "$PGDUAL_BIN" --config-reference 2>/dev/null | grep -Eq '^[|] [[]cutover[]] [|] .pin_writes. [|]'
}

start_pin_target() {
    local port mirror_line=""
    for port in "$OLD_PORT" "$NEW_PORT"; do
        psql_at "$port" postgres -c "CREATE DATABASE $PIN_DB"
    done
    pgdual_has_mirror_dial && mirror_line="mirror = on"
    launch_pgdual pgdual-pin "mirror_order = lockstep
commit_wait = both
$mirror_line"
    PGDUAL_PIN_PORT=$LAUNCH_PORT
    PGDUAL_PIN_PID=$LAUNCH_PID
    PIN_DIAL=1
    PIN_NOTE=""
    if ! pgdual_has_pin_dial; then
        PIN_DIAL=0
        PIN_NOTE="this build has no pin_writes dial: both settings ran its (verbatim) mirroring"
        log "pin: $PIN_NOTE"
    fi
    log "pgbench -i -s $PIN_SCALE through pgdual-pin ($PIN_DB on old and new)"
    "$PGBENCH_BIN" -i -q -s "$PIN_SCALE" -h 127.0.0.1 -p "$PGDUAL_PIN_PORT" -U postgres \
        "$PIN_DB" >"$TMP/pgbench-init-pin.log" 2>&1 || {
        cat "$TMP/pgbench-init-pin.log" >&2
        die "pgbench -i through pgdual-pin failed"
    }
    for port in "$OLD_PORT" "$NEW_PORT"; do
        psql_at "$port" "$PIN_DB" -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
    done
    PIN_SUMS=$(dw_sums "$OLD_PORT" "$PIN_DB")
    [[ $PIN_SUMS == "$(dw_sums "$NEW_PORT" "$PIN_DB")" ]] ||
        die "$PIN_DB differs between old and new after pgbench -i"
}

# pin_counters: "pinned_writes_total nondeterministic_writes_total" of pgdual-pin (0 when absent).
pin_counters() {
    "$PG_BIN/psql" -X -At -F= -h 127.0.0.1 -p "$PGDUAL_PIN_PORT" -U admin -d pgdual \
        -c 'SHOW STATUS' 2>/dev/null |
        awk -F= '{ v[$1] = $2 }
            END { printf "%d %d\n", v["pinned_writes_total"], v["nondeterministic_writes_total"] }'
}

# history_md5 PORT: pgbench_history of bench_pin, every column, in a total order.
history_md5() {
    psql_at "$1" "$PIN_DB" -At -c \
        "SELECT count(*) || ':' || md5(coalesce(string_agg(h::text, E'\n' ORDER BY h::text COLLATE \"C\"), ''))
         FROM pgbench_history h"
}

# Runs one TPC-B pgbench through pgdual-pin; appends to $TMP/pin.tsv the columns of results.tsv,
# then the growth of pinned_writes_total and nondeterministic_writes_total and, for an on run,
# whether pgbench_history came out identical on both sides (same / DIFFERENT / -).
run_pin_one() {
    local round=$1 spec=$2 mode setting port=$PGDUAL_PIN_PORT pid=$PGDUAL_PIN_PID side
    local out before ticks="" rc=0 pin0 nd0 pin1 nd1 same=-
    IFS='|' read -r mode setting <<<"$spec"
    out=$TMP/out/pin.$round.$mode.$setting.log
    kill -0 "$pid" 2>/dev/null || die "pgdual-pin (pid $pid) is gone"
    for side in "$OLD_PORT" "$NEW_PORT"; do
        psql_at "$side" "$PIN_DB" -c 'VACUUM pgbench_branches' -c 'VACUUM pgbench_tellers' \
            -c 'TRUNCATE pgbench_history'
    done
    if ((PIN_DIAL)); then
        admin_set "$port" pin_writes "$setting" || die "pgdual-pin: SET pin_writes = $setting failed"
        sleep 0.5 # the workers get the new dials through their mailboxes
    fi
    read -r pin0 nd0 < <(pin_counters)
    before=$(cpu_ticks "$pid")
    # shellcheck disable=SC2086 # $DW_CLIENTS is a list of pgbench options
    "$PGBENCH_BIN" -n -M "$mode" $DW_CLIENTS -T "$PIN_DURATION" -h 127.0.0.1 -p "$port" \
        -U postgres "$PIN_DB" >"$out" 2>&1 || rc=$?
    if kill -0 "$pid" 2>/dev/null; then
        ticks=$(($(cpu_ticks "$pid") - before))
    else
        log "pgdual-pin (pid $pid) died during $mode $setting"
        rc=99
    fi
    read -r pin1 nd1 < <(pin_counters)
    if [[ $setting == on ]]; then
        same=DIFFERENT
        [[ $(history_md5 "$OLD_PORT") == "$(history_md5 "$NEW_PORT")" ]] && same=same
    fi
    # shellcheck disable=SC2034 # pgbench_figures sets them (failed: its own use)
    local tps lat txns failed status
    pgbench_figures "$out" "$rc" "round $round pin $mode $setting"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "pin-$setting" "tpcb-$mode-c8" \
        "${tps:-NA}" "${lat:-NA}" "${ticks:-NA}" "${txns:-0}" "$status" "$((pin1 - pin0))" \
        "$((nd1 - nd0))" "$same" >>"$TMP/pin.tsv"
    log "round $round pin $(printf '%-9s %-3s' "$mode" "$setting") tps=${tps:-NA} lat=${lat:-NA}ms" \
        "cpu_ticks=${ticks:--} txns=${txns:-0} pinned=$((pin1 - pin0)) nondeterministic=$((nd1 - nd0))" \
        "history=$same $status"
}

# Pinning phase: PIN_ROUNDS rounds over every (mode, setting); the order rotates each round.
run_pin() {
    local round i n mode setting
    local -a specs=()
    for mode in $PIN_MODES; do
        for setting in on off; do
            specs+=("$mode|$setting")
        done
    done
    n=${#specs[@]}
    log "pinning: $PIN_ROUNDS round(s) x modes ($PIN_MODES) x pin_writes on/off x ${PIN_DURATION}s"
    for ((round = 1; round <= PIN_ROUNDS; round++)); do
        for ((i = 0; i < n; i++)); do
            run_pin_one "$round" "${specs[$(((i + round - 1) % n))]}"
        done
    done
}

# Pinning phase: prints its table and headline; writes its markdown to $TMP/md-pin.
report_pin() {
    local table=$TMP/pin-table.tsv mode w on off r verdict headline="" problems
    summarize "$TMP/pin.tsv" 1000 >"$table"
    # Columns: workload, setting, tps, latency, CPU s/1k txns, pinned and nondeterministic writes
    # per transaction (over ok runs), history identical after on runs, rounds ok, rounds.
    awk -F'\t' -v OFS='\t' '
        FILENAME == ARGV[1] { k = $3 SUBSEP $2
            if ($8 == "ok") { tx[k] += $7; pin[k] += $9; nd[k] += $10 }
            if ($11 != "-") { runs[k]++; same[k] += ($11 == "same") }
            next }
        { k = $1 SUBSEP $2
          p = tx[k] > 0 ? sprintf("%.2f", pin[k] / tx[k]) : "NA"
          d = tx[k] > 0 ? sprintf("%.2f", nd[k] / tx[k]) : "NA"
          h = (k in runs) ? same[k] "/" runs[k] : "-"
          print $1, $2, $3, $4, $6, p, d, h, $7, $8 }' "$TMP/pin.tsv" "$table" >"$table.2"
    mv "$table.2" "$table"
    for mode in $PIN_MODES; do
        w=tpcb-$mode-c8
        on=$(dw_cell "$table" "$w" pin-on 3)
        off=$(dw_cell "$table" "$w" pin-off 3)
        r=$(ratio_of "$on" "$off")
        verdict=$(awk -v r="$r" 'BEGIN { if (r == "NA") print "n/a"; else print (r >= 0.9 ? "MET" : "NOT MET") }')
        ((PIN_DIAL)) || verdict="n/a, no pin_writes dial"
        headline+="- $w: pin_writes on / off ${r}x (${on:-NA} / ${off:-NA} tps; target >= 0.9x: $verdict)"$'\n'
    done
    headline+="- pgbench_history identical on old and new (mtime included) after pin_writes = on runs:"
    headline+=" $(awk -F'\t' '$2 == "pin-on" { s = s (s == "" ? "" : ", ") $1 " " $8 } END { print s }' "$table")"
    problems=$(
        [[ -z "$PIN_NOTE" ]] || echo "$PIN_NOTE"
        pgdual_notes pgdual-pin 'secondary_state|writes_mirrored|divergences_total|nondeterministic_writes_total|pinned_writes_total'
        awk -F'\t' '$8 != "ok" { printf "failed run: round %s %s %s %s\n", $1, $2, $3, $8 }' "$TMP/pin.tsv"
    )

    print_phase "$table" workload,pin_writes,median_tps,median_lat_ms,cpu_s_per_1k_txn,pinned_per_txn,nondet_per_txn,history_same,ok,runs \
        "$headline" "$problems"

    {
        echo "## Pinning: TPC-B, pin_writes on vs off (PIN_ROUNDS=$PIN_ROUNDS, PIN_DURATION=${PIN_DURATION}s, PIN_SCALE=$PIN_SCALE)"
        echo
        echo "- workload: built-in TPC-B, \`pgbench -n -M MODE $DW_CLIENTS -T $PIN_DURATION\` for MODE in: $PIN_MODES,"
        echo "  through one pgdual (pgdual-pin: mirror_order = lockstep, commit_wait = both, workers = 2)"
        echo "  with pin_writes = on and = off, SET with the admin console before each run; the order of"
        echo "  the (mode, setting) runs rotates by one per round. Medians over rounds."
        echo "- data: $PIN_DB on old and new made by \`pgbench -i -s $PIN_SCALE\` through pgdual-pin (sums"
        echo "  equal: $PIN_SUMS); before each run, straight to each cluster: VACUUM branches/tellers,"
        echo "  TRUNCATE history. After each on run, pgbench_history (every column) compared on both sides."
        echo "- per transaction: growth of pinned_writes_total and nondeterministic_writes_total over the"
        echo "  ok runs divided by their transactions; proxy CPU per 1,000 transactions."
        echo
        echo "| workload | pin_writes | median tps | median latency ms | proxy CPU s/1k txns | pinned / txn | nondeterministic / txn | history identical | rounds ok |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %d/%d |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$table"
        echo
        md_headline_notes "$headline" "$problems"
    } >"$TMP/md-pin"
}
