#!/usr/bin/env bash
# tools/bench/syscalls.sh PGDUAL_PID PORT DB [pgbench options...]: runs pgbench against the pgdual
# listening on 127.0.0.1:PORT (process PGDUAL_PID) and prints, per pgbench transaction, the
# system calls pgdual made on its data path (perf stat on the syscalls:sys_enter_* tracepoints:
# sendto, recvfrom, epoll_wait, epoll_ctl, writev, sendmsg) and pgdual's CPU milliseconds
# (utime+stime from /proc/PID/stat). Needs perf and root (tracepoints).
#
#   tools/bench/syscalls.sh 1234 6432 bench -M simple -c 4 -j 2 -t 1500
set -euo pipefail
(($# >= 3)) || {
    echo "usage: tools/bench/syscalls.sh PGDUAL_PID PORT DB [pgbench options...]" >&2
    exit 2
}
pid=$1 port=$2 db=$3
shift 3
command -v perf >/dev/null || {
    echo "syscalls.sh: perf not found" >&2
    exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
events=syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait
events+=,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_writev,syscalls:sys_enter_sendmsg
cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
perf stat -e "$events" -p "$pid" -o "$tmp/stat" &
perf_pid=$!
sleep 0.5 # perf attaches
t0=$(cpu)
pgbench -n -h 127.0.0.1 -p "$port" -U postgres "$@" "$db" >"$tmp/pgbench" 2>&1
t1=$(cpu)
kill -INT "$perf_pid"
wait "$perf_pid" || true
txn=$(awk '/number of transactions actually processed/ { split($NF, a, "/"); print a[1] }' "$tmp/pgbench")
[[ -n "$txn" && "$txn" -gt 0 ]] || {
    cat "$tmp/pgbench" >&2
    exit 1
}
grep -E '^tps' "$tmp/pgbench"
awk -v t="$txn" '/syscalls:/ { gsub(",", "", $1); sub("syscalls:sys_enter_", "", $2); printf "%-11s %6.2f per transaction\n", $2, $1 / t }' "$tmp/stat"
awk -v a="$t0" -v b="$t1" -v t="$txn" -v h="$(getconf CLK_TCK)" \
    'BEGIN { printf "pgdual CPU  %6.3f ms per transaction (%d transactions)\n", (b - a) / h * 1000 / t, t }'
