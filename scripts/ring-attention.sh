#!/usr/bin/env bash
# Ring attention on every GPU of this machine (or $GPUS of them): correctness, then timings
# against one GPU. Needs the intfa wheel installed (scripts/build-wheel.sh) and torch.
# Extra arguments go to python/examples/ring_attention.py (e.g. --seqlens 16384,131072).
set -euo pipefail
cd "$(dirname "$0")/.."
gpus="${GPUS:-$(nvidia-smi --list-gpus | wc -l)}"
# NVLink multicast off in every process: on shared machines it can take the host's GPUs down.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
exec torchrun --standalone --nproc-per-node "$gpus" python/examples/ring_attention.py "$@"
