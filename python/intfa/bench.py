"""python -m intfa.bench: intfa and PyTorch SDPA (FlashAttention-2 and cuDNN backends) timed in
one process on the same torch tensors: CUDA events, warm-up, median of repeats, inputs rotated
over enough copies to defeat the L2 cache. Prints a table; --json prints the records in the
format of `intfa bench --json`.

--decode: one decode step (q [B, 32, 1, 128]) on an intfa.KVCache (pages of 64, filled through
its GPU append) and SDPA's fastest backend on contiguous fp16 K/V [B, 8, Nk, 128] (GQA), for
B in {1, 16, 64} and Nk in {1k, 8k, 32k, 128k}: records named decode-… with the bytes a step
must read, the bandwidth achieved and its fraction of the device-to-device copy bandwidth
measured in the same process (1 GiB copies, read plus written bytes); the L2 cache is flushed
before every timed run, outside the events (--flush clean: a 256 MiB zero fill then a read of
it, so that the timed step does not pay for writing back the fill's dirty lines; dirty: the fill
alone). Every SDPA backend's time is kept in the record beside the fastest. `intfa bench
--decode --records … --peers …` puts them beside the Swift benchmark's.

--varlen: intfa.attention_varlen (int8, causal, H = 32, Hkv = 8, D = 128) on packs of equal
lengths against intfa.attention on the same tokens as one dense [B, N, H, D] batch, and on packs
of mixed lengths against the dense batch padded to the longest sequence: records named
varlen-int8, dense-int8 and padded-int8 with the pack's lengths."""

import argparse
import json
import statistics

import intfa

CONFIGS = [  # (B, H, N, D, causal): the paper's table and the 16k-token sweep at D = 128
    (4, 32, 1024, 64, False), (4, 32, 4096, 64, False), (4, 32, 16384, 64, False),
    (16, 16, 1024, 128, False), (4, 16, 4096, 128, False), (1, 16, 16384, 128, False),
    (4, 16, 4096, 128, True), (1, 16, 16384, 128, True),
]


def _median_ms(fn, warmup, repeats, before=None):
    """Median milliseconds of `repeats` calls of `fn` timed by CUDA events after `warmup`
    untimed ones; `before` runs ahead of each timed call, outside the events."""
    import torch
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(repeats):
        if before is not None:
            before()
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return statistics.median(samples)


def decode_records(args):
    """The --decode suite (see the module's docstring)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    scratch = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")

    def flush():
        scratch.zero_()
        if args.flush == "clean":
            torch.amax(scratch.view(torch.int64))  # reads every line; writes one value

    def timed(fn):
        return _median_ms(fn, args.warmup, args.repeats, before=flush)

    source, target = (torch.empty(1 << 30, dtype=torch.uint8, device="cuda") for _ in range(2))
    copy = 2 * source.numel() / (timed(lambda: target.copy_(source)) * 1e-3) / 1e9
    del source, target
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION}
    h, hkv, d, page = 32, 8, 128, 64
    records = []

    def record(kernel, b, n, ms, bytes_read, **extra):
        bandwidth = bytes_read / (ms * 1e-3) / 1e9
        records.append(dict(backend="torch", kernel=kernel, batch=b, heads=h, kv_heads=hkv, seqlen_q=1, seqlen_k=n,
                            head_dim=d, causal=False, ms=ms, tops=4.0 * b * h * n * d / (ms * 1e-3) / 1e12,
                            includes_quantization=False, bytes_read=bytes_read, bandwidth_gbs=bandwidth,
                            copy_bandwidth_gbs=copy, bandwidth_fraction=bandwidth / copy, l2_flush=args.flush, **extra))

    for b in (1, 16, 64):
        for n in ([8192, 131072] if args.quick else [1024, 8192, 32768, 131072]):
            q = torch.randn(b, 1, h, d, device="cuda", dtype=torch.float16)
            cache = intfa.KVCache(b, hkv, d, n, page_size=page)
            chunk = min(n, 1024)
            k, v = (torch.randn(b, chunk, hkv, d, device="cuda", dtype=torch.float16) for _ in range(2))
            for first in range(0, n, chunk):
                cache.append(k[:, :min(chunk, n - first)], v[:, :min(chunk, n - first)])
            del k, v
            ms = timed(lambda: intfa.decode(q, cache, is_causal=False))
            record("decode-intfa-int8", b, n, ms, b * n * cache.bytes_per_token + b * -(-n // page) * 4 + q.numel() * 2)
            del cache
            qt = q.transpose(1, 2)
            k, v = (torch.randn(b, hkv, n, d, device="cuda", dtype=torch.float16) for _ in range(2))
            times = {}
            for name, backend in backends.items():
                def call(backend=backend):
                    with sdpa_kernel(backend):
                        return F.scaled_dot_product_attention(qt, k, v, enable_gqa=True)
                try:
                    times[name] = timed(call)
                except RuntimeError:  # a backend that refuses this shape
                    continue
            del k, v
            torch.cuda.empty_cache()
            if times:
                best = min(times, key=times.get)
                record("decode-sdpa-fp16", b, n, times[best], 2 * b * hkv * n * d * 2 + q.numel() * 2, sdpa_backend=best,
                       sdpa_backend_ms=times)
    return records


def varlen_records(args):
    """The --varlen suite (see the module's docstring)."""
    import torch

    def timed(fn):
        return _median_ms(fn, args.warmup, args.repeats)

    h, hkv, d = 32, 8, 128
    # Equal lengths; mixed lengths; and a batch of many short prompts (64 of 96-414 tokens),
    # which runs as one padded batch.
    packs = [[2048] * 8, [8192] * 4, [1, 17, 1000, 4096, 333, 2048, 64, 1500], [4096, 4096, 4096, 128],
             [96 + 53 * i % 320 for i in range(64)]]
    records = []
    for lengths in packs:
        total, b, longest = sum(lengths), len(lengths), max(lengths)
        q = torch.randn(total, h, d, device="cuda", dtype=torch.float16)
        k, v = (torch.randn(total, hkv, d, device="cuda", dtype=torch.float16) for _ in range(2))
        offsets = [0]
        for n in lengths:
            offsets.append(offsets[-1] + n)
        times = {"varlen-int8": timed(lambda: intfa.attention_varlen(q, k, v, offsets, offsets, is_causal=True))}
        if len(set(lengths)) == 1:
            views = [t.view(b, lengths[0], t.shape[1], d) for t in (q, k, v)]
            times["dense-int8"] = timed(lambda: intfa.attention(*views, is_causal=True, layout="bnhd"))
        else:
            padded = [torch.zeros(b, longest, t.shape[1], d, device="cuda", dtype=torch.float16) for t in (q, k, v)]
            for i, n in enumerate(lengths):
                for dense, packed in zip(padded, (q, k, v)):
                    dense[i, :n] = packed[offsets[i]:offsets[i + 1]]
            times["padded-int8"] = timed(lambda: intfa.attention(*padded, is_causal=True, layout="bnhd"))
        for kernel, ms in times.items():
            records.append(dict(backend="torch", kernel=kernel, batch=b, heads=h, kv_heads=hkv, lengths=lengths,
                                total_tokens=total, head_dim=d, causal=True, ms=ms))
        del q, k, v
        torch.cuda.empty_cache()
    return records


def main():
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--decode", action="store_true", help="decode steps on the paged INT8 KV cache against SDPA")
    parser.add_argument("--quick", action="store_true", help="with --decode: Nk = 8k and 128k only")
    parser.add_argument("--flush", choices=["clean", "dirty"], default="clean",
                        help="with --decode: how the L2 is emptied before each timed step (see above)")
    parser.add_argument("--varlen", action="store_true", help="packed variable-length prefill against dense calls")
    args = parser.parse_args()
    suites = {
        "varlen": (varlen_records, lambda r: f"{r['kernel']:12s} lengths={r['lengths']} {r['ms'] * 1e3:9.1f} us"),
        "decode": (decode_records, lambda r: f"{r['kernel']:18s} B={r['batch']:2d} Nk={r['seqlen_k']:6d} "
                                             f"{r['ms'] * 1e3:9.1f} us {100 * r['bandwidth_fraction']:4.0f}% of copy bandwidth"),
    }
    for name, (suite, line) in suites.items():
        if getattr(args, name):
            records = suite(args)
            print(json.dumps(records, indent=1) if args.json else "\n".join(map(line, records)))
            return
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
