"""Precision of the wgmma kernel's output fold, simulated in fp32 with numpy (no GPU needed).

The kernel keeps O' = O' * alpha + w * (acc + C) with C = 1.5 * 2^23 (the integer-to-float
conversion by bit trick) and removes C * W at the end. O' then grows like C * W and its fp32
rounding with it: the relative error grows linearly with the number of 64-key blocks. This
prints that error for the fold as it was, for an exact conversion per block, and for removing
the offset every few blocks (`kRebaseBlocks` in attention_wgmma.cu).
Run: python3 bench/fold_precision.py
"""
import numpy as np
rng = np.random.default_rng(0)
C = np.float32(12582912.0)
def run(blocks, rows=256, d=128, lazy=True):
    q = rng.standard_normal((rows, 128)); 
    errs_fold=[]; errs_exact=[]
    o = np.zeros((rows, d), np.float32); W = np.zeros(rows, np.float32); ref = np.zeros((rows, d))
    oe = np.zeros((rows, d), np.float32)
    m = np.full(rows, -np.inf)
    for b in range(blocks):
        s = rng.standard_normal((rows, 64)) * 1.0 * np.log2(np.e)  # log2-domain scores
        v = np.clip(np.round(rng.standard_normal((64, d)) * 32), -127, 127)
        mb = s.max(1)
        codes = np.round(255 * np.exp2(s - mb[:, None]))
        acc = codes @ v  # exact int32 P.V
        newm = np.where(mb > m + 8, mb, m) if lazy else np.maximum(m, mb)
        alpha = np.exp2(m - newm).astype(np.float32); alpha[~np.isfinite(m)] = 0
        w = (np.exp2(mb - newm) / 255).astype(np.float32)
        m = newm
        # kernel fold, fp32
        o = (o * alpha[:, None]).astype(np.float32)
        o = (o + w[:, None] * (acc.astype(np.float32) + C)).astype(np.float32)
        W = (W * alpha + w).astype(np.float32)
        # exact conversion fold, fp32
        oe = (oe * alpha[:, None] + w[:, None] * acc.astype(np.float32)).astype(np.float32)
        ref = ref * alpha[:, None].astype(np.float64) + w[:, None].astype(np.float64) * acc
    out = (o - C * W[:, None]).astype(np.float32)
    rel = lambda a: np.abs(a - ref).sum() / np.abs(ref).sum()
    return rel(out), rel(oe)
for blocks in (16, 32, 128, 512, 2048):
    print(blocks, "offset fold rel L1 %.2e   exact-convert fold %.2e" % run(blocks))

def run_rebase(blocks, every, rows=256, d=128):
    o = np.zeros((rows, d), np.float32); W = np.zeros(rows, np.float32); ref = np.zeros((rows, d))
    m = np.full(rows, -np.inf)
    for b in range(blocks):
        s = rng.standard_normal((rows, 64)) * np.log2(np.e)
        v = np.clip(np.round(rng.standard_normal((64, d)) * 32), -127, 127)
        mb = s.max(1); codes = np.round(255 * np.exp2(s - mb[:, None])); acc = codes @ v
        newm = np.where(mb > m + 8, mb, m)
        alpha = np.exp2(m - newm).astype(np.float32); alpha[~np.isfinite(m)] = 0
        w = (np.exp2(mb - newm) / 255).astype(np.float32); m = newm
        o = (o * alpha[:, None]).astype(np.float32)
        o = (o + w[:, None] * (acc.astype(np.float32) + C)).astype(np.float32)
        W = (W * alpha + w).astype(np.float32)
        if (b + 1) % every == 0:  # as the kernel: after each run of kRebaseBlocks folds
            o = (o - C * W[:, None]).astype(np.float32); W[:] = 0
        ref = ref * alpha[:, None].astype(np.float64) + w[:, None].astype(np.float64) * acc
    out = (o - C * W[:, None]).astype(np.float32)
    return np.abs(out - ref).sum() / np.abs(ref).sum()
print("rebase every 8 blocks:")
for blocks in (16, 128, 512, 2048):
    print(blocks, "%.2e" % run_rebase(blocks, 8))
print("rebase every 4 blocks:")
for blocks in (128, 2048):
    print(blocks, "%.2e" % run_rebase(blocks, 4))
