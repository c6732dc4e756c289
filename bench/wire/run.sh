#!/usr/bin/env bash
# Protocol benchmark (issue "server foundation"): Floe vs PostgreSQL 15, same machine, same run.
# Usage: bench/wire/run.sh [--seconds N] [--clients N] [--output FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}"
cargo build --release --locked -p floe --bin floe
exec python3 bench/wire/bench.py --floe "$CARGO_TARGET_DIR/release/floe" "$@"
