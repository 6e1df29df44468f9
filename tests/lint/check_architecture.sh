#!/usr/bin/env bash
# tests/lint/check_architecture.sh: every path ARCHITECTURE.md names in backticks must exist.
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=0
checked=0
while read -r path; do
    checked=$((checked + 1))
    if [[ ! -e "$path" ]]; then
        echo "ARCHITECTURE.md names $path, which does not exist"
        missing=$((missing + 1))
    fi
done < <(grep -o '`[a-z_]*/[A-Za-z0-9_./]*`' ARCHITECTURE.md | tr -d '`' | sort -u)
echo "$((checked - missing)) passed, $missing failed"
((missing == 0))
