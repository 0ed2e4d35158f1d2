"""Precision of the wgmma kernel's output fold, simulated in fp32 with numpy (no GPU needed).

Each 64-key block adds w * A to the fp32 output O', where A is the block's exact int32 P.V
plus an offset that the conversion to fp32 needs; the offset's weight is tracked and removed
later. O' carries the offset until then, and its fp32 rounding with it, so the relative error
grows with the number of blocks between removals. Two forms:
  bit-trick   A = P.V + 1.5 * 2^23 (integer add, bits read as a float near 2^23)
  excess-128  A = P.(V + 128) = P.V + 128 * sum(P) (u8.u8 MMA; bits read as a subnormal),
              the form the kernel ships
each with the offset removed once at the end or after every run of 8 blocks (`kRebaseBlocks`
in attention_wgmma.cu), against an exact conversion per block.
Run: python3 bench/fold_precision.py
"""
import numpy as np

rng = np.random.default_rng(0)
BIT_TRICK = np.float32(12582912.0)


def simulate(blocks, form, every=None, rows=256, d=128):
    o = np.zeros((rows, d), np.float32)
    weight = np.zeros(rows, np.float32)  # weight of the offset still in O'
    ref = np.zeros((rows, d))
    m = np.full(rows, -np.inf)

    def offset():
        return weight[:, None] * (BIT_TRICK if form == "bit-trick" else np.float32(128))

    for b in range(blocks):
        s = rng.standard_normal((rows, 64)) * np.log2(np.e)  # log2-domain scores
        v = np.clip(np.round(rng.standard_normal((64, d)) * 32), -127, 127)
        mb = s.max(1)
        codes = np.round(255 * np.exp2(s - mb[:, None]))
        exact = codes @ v
        newm = np.where(mb > m + 8, mb, m)  # the kernel's lazy reference maximum
        alpha = np.exp2(m - newm).astype(np.float32)
        alpha[~np.isfinite(m)] = 0
        w = (np.exp2(mb - newm) / 255).astype(np.float32)
        m = newm
        if form == "bit-trick":
            acc, added = exact + float(BIT_TRICK), w
        elif form == "excess-128":
            acc, added = exact + 128 * codes.sum(1)[:, None], (w * codes.sum(1)).astype(np.float32)
        else:
            acc, added = exact, np.zeros(rows, np.float32)
        o = (o * alpha[:, None]).astype(np.float32)
        o = (o + w[:, None] * acc.astype(np.float32)).astype(np.float32)
        weight = (weight * alpha + added).astype(np.float32)
        if every and (b + 1) % every == 0:
            o = (o - offset()).astype(np.float32)
            weight[:] = 0
        ref = ref * alpha[:, None].astype(np.float64) + w[:, None].astype(np.float64) * exact
    out = (o - offset()).astype(np.float32)
    return np.abs(out - ref).sum() / np.abs(ref).sum()


print("blocks  exact-convert  bit-trick  bit-trick/8  excess-128  excess-128/8   (relative L1)")
for blocks in (16, 128, 512, 2048):
    errors = [simulate(blocks, form, every) for form, every in
              (("exact", None), ("bit-trick", None), ("bit-trick", 8), ("excess-128", None), ("excess-128", 8))]
    print("%6d  " % blocks + "  ".join("%11.2e" % e for e in errors))
