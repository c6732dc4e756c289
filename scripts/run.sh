#!/usr/bin/env bash
# Builds Floe (release) and starts the server on its defaults: 127.0.0.1:5432, ./floe-data.
# Extra arguments go to `floe serve` (see `floe serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec cargo run --release --locked -p floe -- serve "$@"
