#!/usr/bin/env bash
# tests/lint/check_format.sh: fails when a tracked C file drifts from .clang-format (clang-format 14).
set -euo pipefail
cd "$(dirname "$0")/../.."
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find protocol config proxy tools tests -name '*.[ch]')
clang-format --dry-run -Werror "${files[@]}"
echo "format: ${#files[@]} files clean"
echo "1 passed, 0 failed"
