"""python -m intfa.bench: intfa and PyTorch SDPA (FlashAttention-2 and cuDNN backends) timed in
one process on the same torch tensors: CUDA events, warm-up, median of repeats, inputs rotated
over enough copies to defeat the L2 cache. Prints a table; --json prints the records in the
format of `intfa bench --json`."""

import argparse
import json
import statistics

import intfa

CONFIGS = [  # (B, H, N, D, causal): the paper's table and the 16k-token sweep at D = 128
    (4, 32, 1024, 64, False), (4, 32, 4096, 64, False), (4, 32, 16384, 64, False),
    (16, 16, 1024, 128, False), (4, 16, 4096, 128, False), (1, 16, 16384, 128, False),
    (4, 16, 4096, 128, True), (1, 16, 16384, 128, True),
]


def main():
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda")
    records = []
    for b, h, n, d, causal in CONFIGS:
        copies = max(2, int(2 * 60e6 // (3 * b * h * n * d * 2)) + 1)  # > 2 x the L2 cache
        sets = [[torch.randn(b, h, n, d, device=device, dtype=torch.float16) for _ in range(3)] for _ in range(copies)]
        quantized = [intfa.quantize(*s) for s in sets]

        def sdpa(backend):
            def call(i):
                with sdpa_kernel(backend):
                    F.scaled_dot_product_attention(*sets[i % copies], is_causal=causal)
            return call

        kernels = {
            "intfa-int8": lambda i: intfa.attention_quantized(quantized[i % copies], is_causal=causal),
            "intfa-int8+quant": lambda i: intfa.attention(*sets[i % copies], is_causal=causal),
            "intfa-fp16": lambda i: intfa.attention(*sets[i % copies], is_causal=causal, method="fp16"),
            "sdpa-flash2-fp16": sdpa(SDPBackend.FLASH_ATTENTION),
            "sdpa-cudnn-fp16": sdpa(SDPBackend.CUDNN_ATTENTION),
        }
        operations = 4 * b * h * n * n * d / (2 if causal else 1)
        for name, call in kernels.items():
            try:
                for i in range(args.warmup):
                    call(i)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                samples = []
                for i in range(args.repeats):
                    start.record()
                    call(i)
                    end.record()
                    end.synchronize()
                    samples.append(start.elapsed_time(end))
            except Exception as error:  # a backend this GPU or build lacks
                print(f"# {name} B={b} H={h} N={n} D={d}: {error}")
                continue
            ms = statistics.median(samples)
            records.append(dict(backend="torch", kernel=name, batch=b, heads=h, kv_heads=h, seqlen_q=n, seqlen_k=n,
                                head_dim=d, causal=causal, ms=ms, tops=operations / ms / 1e9,
                                includes_quantization=name != "intfa-int8"))
        del sets, quantized
        torch.cuda.empty_cache()
    if args.json:
        print(json.dumps(records, indent=1))
        return
    names = list(dict.fromkeys(r["kernel"] for r in records))
    print("TOPS".ljust(28) + "".join(name.rjust(18) for name in names))
    for config in dict.fromkeys((r["batch"], r["heads"], r["seqlen_q"], r["head_dim"], r["causal"]) for r in records):
        row = {r["kernel"]: r["tops"] for r in records
               if (r["batch"], r["heads"], r["seqlen_q"], r["head_dim"], r["causal"]) == config}
        label = "B=%d H=%d N=%d D=%d" % config[:4] + (" causal" if config[4] else "")
        print(label.ljust(28) + "".join((f"{row[n]:.0f}" if n in row else "-").rjust(18) for n in names))


if __name__ == "__main__":
    main()
