#!/usr/bin/env bash
# The protocol benchmark now lives in the harness as the `wire` suite (bench/floebench/suites/
# wire.py). This forwards to it: bench/wire/run.sh [bench/run options], e.g. --wire-seconds 10.
exec "$(dirname "$0")/../run" "$@" wire
