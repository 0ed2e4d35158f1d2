"""Float64 simulations of the int8 scheme's variants, of SageAttention2's numerics and of a
per-tensor FP8 attention, on the real-looking heads of bench/realistic_inputs.py and on the
synthetic distributions of `intfa accuracy`: the error each variant would have, before any
kernel is written. Relative L1 per head against exact attention; mean and worst over heads.

    python3 bench/scheme_design.py            # the table of docs/ACCURACY.md's scheme section
"""
import sys

import numpy as np

from realistic_inputs import make_set

LOG2E = 1.4426950408889634


def fp8_e4m3(x):
    """Round to FP8 E4M3 (nearest even, saturating at 448)."""
    a = np.minimum(np.abs(x), 448.0)
    e = np.floor(np.log2(np.maximum(a, 2.0**-9)))
    step = 2.0 ** (np.maximum(e, -6) - 3)
    return np.sign(x) * np.minimum(np.round(a / step) * step, 448.0)


def fp16(x):
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float64)


def quantize_rows(x, groups, levels=127):
    """Symmetric codes with one scale per group of rows (`groups`: group id of each row)."""
    amax = np.zeros(groups.max() + 1)
    np.maximum.at(amax, groups, np.abs(x).max(1))
    scale = amax / levels
    inv = np.where(amax > 0, levels / np.where(amax > 0, amax, 1), 0)
    codes = np.clip(np.rint(x * inv[groups][:, None]), -levels, levels)
    return codes, scale[groups]


def key_groups(n, kind):
    j = np.arange(n)
    if kind == "token":
        return j
    if kind == "block64":
        return j // 64
    if kind == "block128":
        return j // 128
    if kind == "thread128":  # 4 groups per 128 keys: the keys one thread of a warpgroup holds
        return (j // 128) * 4 + (j % 8) // 2
    if kind == "thread64":  # 4 groups per 64 keys
        return (j // 64) * 4 + (j % 8) // 2
    if kind == "thread32":  # 4 groups per 32 keys: 8 keys each, all in one thread's fragment
        return (j // 32) * 4 + (j % 8) // 2
    raise ValueError(kind)


def block_bounds(n, kind):
    if kind == 64 or kind == 128:
        return list(range(0, n, kind)) + [n]
    if kind == "first64":  # a 64-key first block, then 128-key blocks
        return [0] + list(range(64, n, 128)) + [n]
    if isinstance(kind, str) and kind.startswith("split"):  # 128-key tiles, the first split at k
        return [0, int(kind[5:])] + list(range(128, n, 128)) + [n]
    raise ValueError(kind)


def exact(q, k, v, sm):
    s = (q.astype(np.float64) @ k.astype(np.float64).T) * sm
    s -= s.max(1, keepdims=True)
    p = np.exp(s)
    return (p @ v.astype(np.float64)) / p.sum(1, keepdims=True)


def int8_variant(q, k, v, sm, kgroups="token", pblocks=64, exp16=False, vsmooth=False, qgroups="token", exact_first=0):
    n, d = k.shape
    k = k - k.mean(0)
    qg = np.arange(q.shape[0]) if qgroups == "token" else (np.arange(q.shape[0]) // 64) * 8 + np.arange(q.shape[0]) % 8
    qc, sq = quantize_rows(q, qg)
    kc, sk = quantize_rows(k, key_groups(n, kgroups))
    vmean = v.mean(0) if vsmooth else np.zeros(d)
    vt = (v - vmean).T
    vc, sv = quantize_rows(vt, np.arange(d))
    s = (qc @ kc.T) * (sq[:, None] * sm * LOG2E) * sk[None, :]
    bounds = block_bounds(n, pblocks)
    mbs, accs, sums = [], [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        blk = s[:, a:b]
        mb = blk.max(1, keepdims=True)
        if exp16:
            p = fp16(np.exp2(fp16(np.float32(blk - mb))))
        else:
            p = np.exp2(np.float32(blk - mb))
        codes = np.rint(p * 255) if b > exact_first else p * 255
        mbs.append(mb)
        accs.append(codes @ vc[:, a:b].T)
        sums.append(codes.sum(1, keepdims=True))
    m = np.max(np.concatenate(mbs, 1), 1, keepdims=True)
    num = sum(np.exp2(mb - m) * acc for mb, acc in zip(mbs, accs))
    den = sum(np.exp2(mb - m) * c for mb, c in zip(mbs, sums))
    return num * sv[None, :] / den + vmean


def sage2(q, k, v, sm):
    """SageAttention2's sm90 numerics: INT8 Q per 8 rows, K (smoothed) per 32 interleaved keys
    of 128, P as E4M3 of 448·exp2(S − running max), V E4M3 per channel, FP32 accumulation."""
    n, d = k.shape
    k = k - k.mean(0)

    def q8(x, groups):
        amax = np.zeros(groups.max() + 1)
        np.maximum.at(amax, groups, np.abs(x).max(1))
        scale = amax / 127 + 1e-7
        y = x / scale[groups][:, None]
        return np.trunc(y + 0.5 * np.sign(y)), scale[groups]

    rows = np.arange(q.shape[0])
    qc, sq = q8(q, (rows // 64) * 8 + rows % 8)
    kc, sk = q8(k, key_groups(n, "thread128"))
    vamax = np.abs(v).max(0)
    vscale = vamax / 448
    vf = fp8_e4m3(v / np.where(vscale > 0, vscale, 1))
    s = (qc @ kc.T) * sq[:, None] * sk[None, :] * sm * LOG2E
    m = np.full((q.shape[0], 1), -np.inf)
    l = np.zeros((q.shape[0], 1))
    acc = np.zeros((q.shape[0], d))
    for a in range(0, n, 128):
        blk = s[:, a:a + 128]
        mnew = np.maximum(m, blk.max(1, keepdims=True))
        alpha = np.exp2(m - mnew)
        p = np.exp2(blk - mnew)
        l = l * alpha + p.sum(1, keepdims=True)
        acc = acc * alpha + fp8_e4m3(p * 448) @ vf[a:a + 128]
        m = mnew
    return acc * vscale / (448 * l)


def fp8_tensor(q, k, v, sm):
    """Per-tensor E4M3 Q, K, V and P (cuDNN's FP8 attention)."""
    def t(x):
        s = np.abs(x).max() / 448
        return fp8_e4m3(x / s), s
    qf, sq = t(q)
    kf, sk = t(k)
    vf, sv = t(v)
    s = (qf @ kf.T) * sq * sk * sm
    s -= s.max(1, keepdims=True)
    p = np.exp(s)
    return (fp8_e4m3(p * 448) @ vf) * sv / (448 * p.sum(1, keepdims=True))


def rel_l1(o, r):
    return np.abs(o - r).sum() / np.abs(r).sum()


VARIANTS = {
    "int8 (today)": dict(),
    "K thread128": dict(kgroups="thread128"),
    "K thread64": dict(kgroups="thread64"),
    "K block64": dict(kgroups="block64"),
    "P 128": dict(pblocks=128),
    "P first64+128": dict(pblocks="first64"),
    "V smooth": dict(vsmooth=True),
    "Kt128 P128 f16": dict(kgroups="thread128", pblocks=128, exp16=True),
    "Kt128 Pf64 f16": dict(kgroups="thread128", pblocks="first64", exp16=True),
    "Kt128 Pf64 f16 Vs": dict(kgroups="thread128", pblocks="first64", exp16=True, vsmooth=True),
    "Kt64 P64 f16": dict(kgroups="thread64", pblocks=64, exp16=True),
}


def evaluate(heads, sm_of=lambda d: 1 / np.sqrt(d)):
    q, k, v = heads
    table = {}
    refs = [exact(q[h], k[h], v[h], sm_of(q.shape[-1])) for h in range(q.shape[0])]
    methods = {name: (lambda qh, kh, vh, sm, kw=kw: int8_variant(qh, kh, vh, sm, **kw)) for name, kw in VARIANTS.items()}
    methods["sage2 (sim)"] = sage2
    methods["fp8 tensor"] = fp8_tensor
    for name, fn in methods.items():
        errs = [rel_l1(fn(q[h], k[h], v[h], sm_of(q.shape[-1])), refs[h]) for h in range(q.shape[0])]
        table[name] = errs
    return table


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    seeds = [int(s) for s in sys.argv[2:]] or [0]
    for seed in seeds:
        for d in (128, 64):
            table = evaluate(make_set(n, seed, d))
            base = np.mean(table["int8 (today)"])
            sage = table["sage2 (sim)"]
            print(f"\nrealistic set, N={n}, D={d}, seed {seed}: rel L1 mean (worst head), ratio of mean to today's, to sage2's")
            for name, errs in table.items():
                print(f"  {name:22s} {np.mean(errs):.5f} ({np.max(errs):.5f})  x{np.mean(errs) / base:5.2f}  sage x{np.mean(errs) / np.mean(sage):5.2f} worst/sage-worst {np.max(errs) / np.max(sage):4.2f}")
            print("  per head (today | best candidate | sage2):")
            for h, errs in enumerate(zip(table["int8 (today)"], table["Kt128 Pf64 f16"], sage)):
                print("   ", h, " ".join(f"{e:.5f}" for e in errs))


if __name__ == "__main__":
    main()
