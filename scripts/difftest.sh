#!/usr/bin/env bash
# The differential tester's long run: seeded random statements on `floe serve` and on a private
# PostgreSQL 15, side by side (tests/differential/difftest.py starts both).
#   scripts/difftest.sh [--queries N] [--seed S] [--out DIR] [--minutes M] [--against-postgres]
# Defaults: 100000 statements, a random seed (printed), output in target/difftest/ (summary.txt,
# findings.jsonl, cases/*.slt: one minimal regression case per class of difference). Exits 1 when
# a difference falls in a class not listed in tests/differential/known_differences.toml.
# The Floe binary is FLOE_BIN (default $CARGO_TARGET_DIR/debug/floe; build it first).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}"
export FLOE_BIN="${FLOE_BIN:-$CARGO_TARGET_DIR/debug/floe}"

. scripts/venv.sh

exec "$venv/bin/python" tests/differential/difftest.py "$@"
