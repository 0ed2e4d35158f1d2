#!/usr/bin/env python3
"""Decode accuracy on the GPU beside the 8-bit peers, on the same tensors.

    python3 bench/decode_accuracy.py DIR > ours.json

For each input kind (gaussian; rope-outliers: a few K channels with a large offset and spread,
RoPE'd Q and K; sink: token 0 takes most of every row's mass; flat: near-uniform rows) and
Nq = 1 and 4 new tokens against Nk = 4096 cached ones at H = 32, Hkv = 8, D = 128, it decodes
through intfa.KVCache + intfa.decode (pages of 64, non-causal) and prints records with the
relative L1 error per query head against float64 attention on the same fp16 tensors (mean and
worst over the heads), beside fp16 SDPA's. It also writes NAME_q.npy, NAME_k.npy, NAME_v.npy
into DIR in the peers' form ([1, H, N, D] fp16; K and V expanded to H heads, query head h
reading KV head h // (H / Hkv)), with the Nq query rows tiled to 128 rows: prefill kernels want
whole query tiles, and without a mask the rows are independent, so an error summed over the
tiled rows is the error over the original ones. The inputs are the same on every run (fixed
seed)."""
import json
import math
import os
import sys

import numpy as np
import torch

import intfa

H, HKV, D, NK = 32, 8, 128, 4096
GROUP = H // HKV
KINDS = ["gaussian", "rope-outliers", "sink", "flat"]
QUERY_LENGTHS = [1, 4]  # GROUP · Nq ≤ 16 query rows per KV head, the decode kernel's limit


def rope(x, start):
    """Rotary embedding of x [..., N, D] at positions start…start+N-1 (rotate-half form)."""
    n, half = x.shape[-2], D // 2
    frequency = 1.0 / (500000.0 ** (torch.arange(half, dtype=torch.float64) / half))
    angle = (torch.arange(start, start + n, dtype=torch.float64)[:, None] * frequency[None]).to(x.device)
    cos, sin = angle.cos(), angle.sin()
    a, b = x[..., :half].double(), x[..., half:].double()
    return torch.cat([a * cos - b * sin, a * sin + b * cos], -1).float()


def inputs(kind, nq, generator):
    """q [1, H, nq, D], k and v [1, Hkv, NK, D], fp16."""
    q = torch.randn(1, H, nq, D, generator=generator).cuda()
    k = torch.randn(1, HKV, NK, D, generator=generator).cuda()
    v = torch.randn(1, HKV, NK, D, generator=generator).cuda()
    if kind == "rope-outliers":
        channels = torch.tensor([5, 6, 37, 38, 70, 101]).cuda()
        k[..., channels] = k[..., channels] * 4 + 12.0
        q[..., channels] = q[..., channels] * 3
        k, q = rope(k, 0), rope(q, NK - nq)
    elif kind == "sink":
        k[:, :, 0] = q.mean(2).view(1, HKV, GROUP, D).mean(2) * 6
        v[:, :, 0] *= 0.1
    elif kind == "flat":
        q = q * 0.02
    return q.half(), k.half(), v.half()


def relative_l1(out, ref):
    per_head = ((out - ref).abs().sum((0, 2, 3)) / ref.abs().sum((0, 2, 3))).tolist()
    return sum(per_head) / len(per_head), max(per_head)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    generator = torch.Generator().manual_seed(20261204)
    records = []
    for kind in KINDS:
        for nq in QUERY_LENGTHS:
            q, k, v = inputs(kind, nq, generator)
            name = f"decode-{kind}-nq{nq}"
            k_heads, v_heads = (t.repeat_interleave(GROUP, 1) for t in (k, v))
            for suffix, tensor in zip("qkv", (q.repeat(1, 1, 128 // nq, 1), k_heads, v_heads)):
                np.save(os.path.join(folder, f"{name}_{suffix}.npy"), tensor.cpu().numpy())
            ref = torch.softmax((q.double() @ k_heads.double().transpose(-1, -2)) / math.sqrt(D), -1) @ v_heads.double()
            cache = intfa.KVCache(1, HKV, D, NK, page_size=64)
            cache.append(k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous())
            ours = intfa.decode(q.transpose(1, 2).contiguous(), cache, is_causal=False).transpose(1, 2).double()
            sdpa = torch.nn.functional.scaled_dot_product_attention(q, k_heads, v_heads).double()
            for method, out in (("intfa-decode-int8", ours), ("sdpa-fp16", sdpa)):
                mean, worst = relative_l1(out, ref)
                records.append(dict(input=name, method=method, rel_l1_mean=mean, rel_l1_worst=worst))
    print(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
