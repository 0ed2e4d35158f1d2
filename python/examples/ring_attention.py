"""Ring attention across the GPUs of one machine: correctness against single-GPU intfa.attention
and float64 attention, then timings against one GPU. Run through scripts/ring-attention.sh
(torchrun, one process per GPU); rank 0 prints JSON lines."""
import argparse
import json
import math
import os

for name, value in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"), ("NVSHMEM_DISABLE_NVLS", "1")):
    os.environ[name] = value  # NVLink multicast stays off in every process

import torch
import torch.distributed as dist
import torch.nn.functional as F

import intfa
from intfa.distributed import even_bounds, ring_attention, zigzag_shard


def shard(x, rank, world, causal):
    """Zigzag shards when causal; otherwise contiguous slices on 64-token boundaries (uneven
    when n is not a multiple of 64·world)."""
    if causal:
        return zigzag_shard(x, rank, world)
    a, z = even_bounds(x.shape[2], world)[rank]
    return x[:, :, a:z]


def inputs(b, h, hkv, n, d, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return [torch.randn(b, heads, n, d, device="cuda", dtype=torch.float16, generator=g) for heads in (h, hkv, hkv)]


def rel_l1(a, b):
    return ((a.double() - b.double()).abs().sum() / b.double().abs().sum()).item()


def float64_rows(q, k, v, causal, rows):
    """float64 attention of query rows `rows` (indices into the full sequence)."""
    group = q.shape[1] // k.shape[1]
    kk, vv = (x.double().repeat_interleave(group, 1) for x in (k, v))
    s = torch.einsum("bhnd,bhmd->bhnm", q[:, :, rows].double(), kk) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(torch.arange(k.shape[2], device="cuda")[None, :] > rows[:, None], -math.inf)
    return torch.softmax(s, -1) @ vv


def check(rank, world, report):
    for b, h, hkv, n, d, causal in [(1, 8, 8, 5000, 128, False), (1, 8, 8, 5003, 128, True), (2, 8, 2, 4099, 64, True),
                                    (1, 16, 4, 8191, 128, False)]:
        q, k, v = inputs(b, h, hkv, n, d, seed=n)
        single = intfa.attention(q, k, v, is_causal=causal)
        mine = shard(single, rank, world, causal)
        positions = shard(torch.arange(n, device="cuda")[None, None, :, None], rank, world, causal).flatten()
        subset = positions[:: max(1, positions.numel() // 256)]
        reference = float64_rows(q, k, v, causal, subset)
        for kv_format in ("int8", "fp16"):
            out = ring_attention(*(shard(x, rank, world, causal) for x in (q, k, v)), is_causal=causal, kv_format=kv_format)
            pick = torch.searchsorted(positions.contiguous(), subset.contiguous())
            record = dict(kind="check", world=world, rank=rank, batch=b, heads=h, kv_heads=hkv, seqlen=n, head_dim=d,
                          causal=causal, kv_format=kv_format, vs_single_gpu=rel_l1(out, mine),
                          vs_float64=rel_l1(out[:, :, pick], reference), single_gpu_vs_float64=rel_l1(mine[:, :, pick], reference))
            report(record)


def timed(function, repeats):
    for _ in range(2):
        function()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        dist.barrier()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def bench(rank, world, seqlens, repeats, heads, report):
    for h, hkv in heads:
        for n in seqlens:
            for causal in (False, True):
                q, k, v = inputs(1, h, hkv, n, 128, seed=1)
                parts = [shard(x, rank, world, causal) for x in (q, k, v)]
                record = dict(kind="bench", world=world, heads=h, kv_heads=hkv, seqlen=n, head_dim=128, causal=causal)
                for kv_format in ("int8", "fp16"):
                    record[f"ring_{kv_format}_ms"] = timed(
                        lambda: ring_attention(*parts, is_causal=causal, kv_format=kv_format), repeats)
                # One GPU on the whole sequence (every rank runs it, rank 0 reports).
                record["single_gpu_ms"] = timed(lambda: intfa.attention(q, k, v, is_causal=causal), repeats)
                record["speedup_int8"] = record["single_gpu_ms"] / record["ring_int8_ms"]
                record["speedup_fp16"] = record["single_gpu_ms"] / record["ring_fp16_ms"]
                record["int8_over_fp16_ring"] = record["ring_fp16_ms"] / record["ring_int8_ms"]
                n_r = n // world
                record["bytes_per_hop_fp16"] = 2 * n_r * hkv * 128 * 2
                record["bytes_per_hop_int8"] = n_r * hkv * 128 + 128 * hkv * ((n_r + 63) // 64 * 64) \
                    + 4 * hkv * ((n_r + 63) // 64 * 64) + 8 * hkv * 128
                report(record)
                del q, k, v, parts
                torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seqlens", default="16384,32768,65536,131072,262144")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-check", action="store_true")
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument("--heads", default="16/16,32/8", help="query/kv head pairs to time")
    args = parser.parse_args()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    dist.init_process_group("nccl", device_id=torch.device("cuda", torch.cuda.current_device()))

    def report(record):
        gathered = [None] * world
        dist.all_gather_object(gathered, record)
        if rank == 0:
            if record["kind"] == "check":
                worst = {key: max(r[key] for r in gathered) for key in ("vs_single_gpu", "vs_float64", "single_gpu_vs_float64")}
                record = {**{k: v for k, v in record.items() if k != "rank"}, **worst}
            print(json.dumps(record), flush=True)

    if not args.skip_check:
        check(rank, world, report)
    if not args.skip_bench:
        heads = [tuple(int(x) for x in pair.split("/")) for pair in args.heads.split(",")]
        bench(rank, world, [int(x) for x in args.seqlens.split(",")], args.repeats, heads, report)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
