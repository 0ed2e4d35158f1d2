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
