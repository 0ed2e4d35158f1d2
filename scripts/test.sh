#!/usr/bin/env bash
# Runs every test. Installs what the tests need first: NVRTC (pinned, from the Python
# package index) into .tools/, so the kernel compile tests run even without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

nvrtc_version=13.0.88
nvrtc_dir="$PWD/.tools/nvrtc"
if [ ! -e "$nvrtc_dir/nvidia/cu13/lib/libnvrtc.so.13" ]; then
    echo "Installing nvidia-cuda-nvrtc==$nvrtc_version into .tools/nvrtc"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --no-deps --target "$nvrtc_dir" "nvidia-cuda-nvrtc==$nvrtc_version"
fi
export INTFA_NVRTC="$nvrtc_dir/nvidia/cu13/lib"
# The compile tests fail instead of skipping when NVRTC cannot be loaded.
export INTFA_REQUIRE_NVRTC=1
# A private kernel cache, so tests exercise compilation rather than earlier runs' output.
export INTFA_CACHE_DIR="${INTFA_CACHE_DIR:-$PWD/.build/test-kernel-cache}"

swift build --build-tests "$@"
swift test --skip-build "$@"

# The C interface and the Python package over it (CPU path, error paths, ctypes layer), on
# the release library that the wheel ships.
./scripts/build-library.sh
python_dir="$PWD/.tools/python"
if ! python3 -c "import numpy, pytest" 2>/dev/null; then
    if [ ! -e "$python_dir/pytest" ]; then
        echo "Installing numpy and pytest into .tools/python"
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
            --target "$python_dir" "numpy==2.2.6" "pytest==8.4.2"
    fi
    export PYTHONPATH="$python_dir${PYTHONPATH:+:$PYTHONPATH}"
fi
INTFA_LIBRARY="$PWD/.build/release/libintfa_c.so" python3 -m pytest -q -p no:cacheprovider python/tests

# A C caller of the same library, built with the system C compiler.
cc -I include examples/c/attention_host.c -L .build/release -lintfa_c \
    -Wl,-rpath,"$PWD/.build/release" -lm -o .build/attention_host
.build/attention_host
