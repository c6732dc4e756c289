#!/usr/bin/env bash
# The one test command (see README): installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}"
cargo test --workspace --locked
