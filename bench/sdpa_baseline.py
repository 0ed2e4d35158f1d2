#!/usr/bin/env python3
"""Peer baseline for `intfa bench --backend cuda`: PyTorch SDPA (FlashAttention-2 and cuDNN
backends, fp16) on the same configurations, printing the same JSON records.

    python3 bench/sdpa_baseline.py [--quick] > sdpa.json

Timing: CUDA events around each call after warm-up, median of --repeats runs, inputs
rotated among several sets so that the L2 cache does not flatter small sizes.
"""
import argparse
import json
import statistics
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "sdpa-flash2-fp16": SDPBackend.FLASH_ATTENTION,
    "sdpa-cudnn-fp16": SDPBackend.CUDNN_ATTENTION,
}


def configurations(quick):
    """The paper's table (B=4, H=32, D=64, non-causal) and the 16k-token sweep
    (B·N = 16384, H·D = 2048), in the same order as `intfa bench`."""
    lengths = [1024, 4096, 16384] if quick else [1024, 2048, 4096, 8192, 16384]
    configs = [dict(batch=4, heads=32, seqlen=n, head_dim=64, causal=False) for n in lengths]
    for head_dim in (64, 128):
        for causal in (False, True):
            for n in lengths:
                configs.append(dict(batch=16384 // n, heads=2048 // head_dim, seqlen=n,
                                    head_dim=head_dim, causal=causal))
    return configs


def time_kernel(fn, input_sets, repeats, warmup):
    for i in range(warmup):
        fn(*input_sets[i % len(input_sets)])
    torch.cuda.synchronize()
    times = []
    for i in range(repeats):
        args = input_sets[i % len(input_sets)]
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(*args)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1k, 4k, 16k only")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rotate-bytes", type=float, default=512e6,
                        help="input sets cover at least this many bytes (L2 is 60 MB)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("sdpa_baseline: no CUDA device")

    records = []
    for c in configurations(args.quick):
        b, h, n, d = c["batch"], c["heads"], c["seqlen"], c["head_dim"]
        set_bytes = 3 * b * h * n * d * 2
        sets = max(1, min(16, int(args.rotate_bytes // set_bytes) + 1))
        input_sets = [tuple(torch.randn(b, h, n, d, device="cuda", dtype=torch.float16) for _ in range(3))
                      for _ in range(sets)]
        ops = 4.0 * b * h * n * n * d * (0.5 if c["causal"] else 1.0)
        for kernel, backend in BACKENDS.items():
            def call(q, k, v, backend=backend, causal=c["causal"]):
                with sdpa_kernel(backend):
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
            try:
                ms = time_kernel(call, input_sets, args.repeats, args.warmup)
            except RuntimeError as error:  # a backend that refuses this shape
                print(f"sdpa_baseline: {kernel} {c}: {error}", file=sys.stderr)
                continue
            records.append(dict(backend="torch", kernel=kernel, batch=b, heads=h, kv_heads=h,
                                seqlen_q=n, seqlen_k=n, head_dim=d, causal=c["causal"], ms=ms,
                                tops=ops / (ms * 1e-3) / 1e12, includes_quantization=False))
            print(f"{kernel:18s} B={b:2d} H={h:2d} N={n:5d} D={d:3d} causal={int(c['causal'])} "
                  f"{ms:8.3f} ms {records[-1]['tops']:7.1f} TOPS", file=sys.stderr)
        del input_sets
        torch.cuda.empty_cache()
    print(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
