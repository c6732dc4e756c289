#!/usr/bin/env bash
# The driver tests (tests/clients: psql, psycopg 3, asyncpg, raw sockets) against real servers.
# Creates or reuses a venv in ~/.cache/floe-venv and installs tests/clients/requirements.txt into
# it (skipped while the requirements file is unchanged), then runs pytest; its exit code is ours.
# Each test module starts its own `floe serve` from FLOE_BIN (default
# $CARGO_TARGET_DIR/debug/floe); FLOE_CLIENT_TARGET=postgres runs them against PostgreSQL 15.
# Extra arguments go to pytest, e.g. `scripts/client-tests.sh -k psql -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}"
export FLOE_BIN="${FLOE_BIN:-$CARGO_TARGET_DIR/debug/floe}"

. scripts/venv.sh

if [ "${FLOE_CLIENT_TARGET:-floe}" = floe ] && [ ! -x "$FLOE_BIN" ]; then
    echo "client-tests: $FLOE_BIN not found; run 'cargo build -p floe --bin floe' first" >&2
    exit 1
fi

exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/clients "$@"
