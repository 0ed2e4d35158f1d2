#!/usr/bin/env bash
# Builds libintfa (the C interface of include/intfa.h) as a release shared library with the
# Swift runtime linked in, exporting only intfa.h's functions: .build/release/libintfa_c.so.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product intfa_c -Xswiftc -static-stdlib \
    -Xlinker --version-script="$PWD/scripts/intfa.map" "$@"
