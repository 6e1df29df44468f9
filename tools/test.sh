#!/usr/bin/env bash
# tools/test.sh: THE test command. Installs dependencies, builds build/ with -Werror and runs the
# whole ctest suite, then does the same in build-asan/ with address,undefined sanitizers (all but
# the tests labelled heavy).
# Exits non-zero if either suite fails; a failing plain suite skips the sanitizer build unless
# PGDUAL_TEST_KEEP_GOING=1. Nothing is printed after the last ctest, so its summary ends the output.
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${PGDUAL_TEST_JOBS:-2}
# Tests wait on PostgreSQL and on sleeps more than they use a core (a 2-core run used one core on
# average): three at a time keep the whole run under 20 minutes there.
CTEST_JOBS=${PGDUAL_TEST_CTEST_JOBS:-3}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}

tools/install-deps.sh

run_suite() { # BUILD_DIR CTEST_ARGS CMAKE_ARGS...
    local dir=$1 ctest_args=$2
    shift 2
    # Called in an || list, where set -e is off: every step checks for itself.
    cmake -S . -B "$dir" -DPGDUAL_WERROR=ON "$@" || return
    cmake --build "$dir" -j "$JOBS" || return
    # shellcheck disable=SC2086 # ctest_args is a word list
    (cd "$dir" && ctest --output-on-failure -j "$CTEST_JOBS" $ctest_args) || return
}

rc=0
run_suite build "" || rc=$?
if ((rc != 0)) && [[ "${PGDUAL_TEST_KEEP_GOING:-0}" != 1 ]]; then
    exit "$rc"
fi
asan_rc=0
# The sanitizer pass leaves out the tests labelled heavy (tests/CMakeLists.txt): their time goes
# to PostgreSQL; the plain pass above runs them.
run_suite build-asan "-LE heavy" -DPGDUAL_SANITIZE=address,undefined || asan_rc=$?
if ((rc != 0 || asan_rc != 0)); then
    exit 1
fi
exit 0
