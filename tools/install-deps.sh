#!/usr/bin/env bash
# tools/install-deps.sh: installs every Debian package pgdual needs to build, test and demo.
# Idempotent: asks dpkg which packages are missing and runs apt-get only for those. Needs no stdin.
# Services that packages would start on install (the Debian "main" PostgreSQL cluster on 5432,
# pgbouncer, pgpool2) are kept from starting: our tests run their own clusters on random ports.
# Then node-postgres (npm `pg`, for the TLS driver test) goes into .deps/node of the checkout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

PACKAGES=(
    build-essential cmake pkg-config git
    libuv1-dev libpq-dev libssl-dev libjemalloc-dev libpg-query-dev libprotobuf-c-dev
    libxxhash-dev libinih-dev libcmocka-dev libmicrohttpd-dev
    postgresql-15 postgresql-client-15 pgbouncer pgpool2
    procps iproute2 util-linux clang-format python3 python3-psycopg2
)
# node and npm: Debian's packages, unless a node with its own npm is installed already.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

# node-postgres for tests/integration/it_client_tls.sh, pinned to one major version, installed
# once per checkout (the npm registry is reached only when it is missing).
install_node_pg() {
    local dir="$ROOT/.deps/node"
    if [[ -f "$dir/node_modules/pg/package.json" ]]; then
        return 0
    fi
    echo "install-deps: npm install pg@8 into $dir"
    mkdir -p "$dir"
    local try
    for try in 1 2 3; do
        if npm install --prefix "$dir" --no-audit --no-fund --loglevel=error pg@8 </dev/null; then
            return 0
        fi
        echo "install-deps: npm install failed (try $try)" >&2
        sleep 2
    done
    return 1
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    install_node_pg
    exit 0
fi

echo "install-deps: installing ${missing[*]}"

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps: not root and sudo not found; install: ${missing[*]}" >&2
        exit 1
    fi
    SUDO=(sudo -n)
fi

# A policy-rc.d that answers 101 tells maintainer scripts not to start services. Add one only for
# the duration of the install, and only when the system has none of its own.
POLICY=/usr/sbin/policy-rc.d
policy_added=0
cleanup() {
    if ((policy_added)); then
        "${SUDO[@]}" rm -f "$POLICY"
    fi
}
trap cleanup EXIT
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\n# added by pgdual tools/install-deps.sh during apt-get install\nexit 101\n' |
        "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    policy_added=1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${missing[@]}" </dev/null
install_node_pg
echo "install-deps: done"
