#!/usr/bin/env bash
# Installs what building Floe needs beyond the Rust toolchain, once and quietly:
# clang/libclang for the `rocksdb` crate's bindings. Safe to run again (does nothing then).
set -euo pipefail
if [ -e /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
    if command -v clang >/dev/null 2>&1; then
        exit 0
    fi
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
echo "scripts/setup.sh: installing clang and libclang-dev (needed to build RocksDB)" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-dev >/dev/null
