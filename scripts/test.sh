#!/usr/bin/env bash
# The one test command (see README). It installs what the tests need, idempotently, then runs:
#   1. Rust unit and integration tests (tokio-postgres protocol tests included),
#   2. every sqllogictest file over the wire against `floe serve`, and sql-tests/postgres/
#      also against PostgreSQL 15 (required when its binaries are installed); then the Floe
#      side again on a server that flushes every settled row to cold runs every few kB of log,
#   3. the Python driver tests (psycopg 3, asyncpg), psql and raw-socket tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}"

./scripts/setup.sh

# Everything in one build (the server binary the wire tests start included): one feature set
# for the whole workspace, so nothing heavy is compiled twice.
cargo build --workspace --all-targets --locked
export FLOE_BIN="$CARGO_TARGET_DIR/debug/floe"

if [ -x /usr/lib/postgresql/15/bin/postgres ]; then
    export FLOE_REQUIRE_POSTGRES="${FLOE_REQUIRE_POSTGRES:-1}"
fi

cargo test --workspace --locked
# The SQL suite once more with (almost) every row cold: checkpoints every 8 kB of log, each
# moving every settled row into runs, which the compactor merges.
SLT_TARGET=floe-cold cargo test --workspace --locked --test slt

if [ -x scripts/client-tests.sh ]; then
    ./scripts/client-tests.sh
fi
