#!/usr/bin/env bash
# Builds the Python wheel dist/intfa-<version>-py3-none-manylinux_2_36_x86_64.whl: the
# pure-Python package in python/intfa plus libintfa.so (Swift runtime inside; it needs only
# the C and C++ runtimes, glibc >= 2.36). Install it anywhere with `pip install dist/*.whl`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-library.sh
python3 scripts/make_wheel.py --library .build/release/libintfa_c.so --package python/intfa --output dist
