"""Real-looking attention inputs, made from seeded noise (no model weights needed).

Each head is built the way decoder LLM activations look after the projections:
  * Q and K share a few large channel offsets (outlier channels), placed in the low-frequency
    RoPE pairs where real models carry them, then rotated by RoPE (theta 10000 or 500000), so
    the offset of a fast-rotating pair is a sinusoid over positions (a channel mean cannot
    remove it) and that of a slow pair is almost constant;
  * an attention sink: token 0's key is aligned with the queries' common direction (scores
    several nats above the rest) and carries a small value vector; some heads have extra
    sinks at "delimiter" positions in the middle of the sequence;
  * a per-head temperature, from flat heads (queries of small norm: long rows of nearly equal
    weights) to sharp ones; and local heads whose scores fall with distance;
  * V with per-channel offsets and a few heavy channels.

Used by bench/scheme_design.py (float64 simulations of the int8 scheme's variants) and written
to .npy files (`python3 bench/realistic_inputs.py DIR`) for `intfa accuracy --input` and the
peers' accuracy mode, so every method is measured on the same inputs.
"""
import os
import sys

import numpy as np

# (name, head_dim, rope theta, temperature, sink strength in nats, mid-sequence sinks, local)
HEAD_KINDS = [
    ("sink-sharp", 128, 10000.0, 1.6, 8.0, 0, False),
    ("sink-flat", 128, 10000.0, 0.35, 6.0, 0, False),
    ("sinks-mid", 128, 500000.0, 1.0, 7.0, 6, False),
    ("local", 128, 10000.0, 1.2, 5.0, 0, True),
    ("plain", 128, 500000.0, 1.0, 0.0, 0, False),
    ("flat", 128, 10000.0, 0.15, 0.0, 0, False),
    ("outlier-heavy", 128, 10000.0, 1.0, 4.0, 0, False),
    ("sink-strong", 128, 500000.0, 1.3, 12.0, 2, False),
    ("previous-token", 128, 10000.0, 1.0, 5.0, 0, "previous"),
    ("previous-token-tail", 128, 10000.0, 1.0, 0.0, 0, "previous"),
    ("retrieval", 128, 500000.0, 1.0, 4.0, 0, "retrieval"),
]


def rope(x, theta):
    n, d = x.shape
    half = d // 2
    freq = theta ** (-np.arange(half) / half)
    angle = np.arange(n)[:, None] * freq[None, :]
    cos, sin = np.cos(angle), np.sin(angle)
    # The rotate-half convention of Llama-style models: pair (c, c + d/2).
    a, b = x[:, :half], x[:, half:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=1)


def make_head(kind, n, rng, d=None):
    name, dim, theta, temperature, sink, mid_sinks, local = kind
    d = d or dim
    half = d // 2
    # A shared low-rank structure plus noise, as projections of a residual stream give.
    rank = 16
    basis = rng.standard_normal((rank, d)) / np.sqrt(rank)
    hidden = rng.standard_normal((n, rank))
    q = hidden @ basis + 0.6 * rng.standard_normal((n, d))
    k = hidden @ (basis + 0.3 * rng.standard_normal((rank, d))) + 0.6 * rng.standard_normal((n, d))
    # Outlier channels in the low-frequency pairs (last quarter of each half), shared by Q and K.
    outliers = rng.choice(np.arange(half - half // 4, half), size=4 if name != "outlier-heavy" else 8, replace=False)
    for c in outliers:
        size = rng.uniform(4.0, 10.0) * (2.0 if name == "outlier-heavy" else 1.0)
        sign = rng.choice([-1.0, 1.0])
        q[:, c] += sign * size * rng.uniform(0.5, 1.0)
        k[:, c] += sign * size
        q[:, c + half] += 0.3 * size
        k[:, c + half] += 0.3 * size
    if local is True:
        # High-frequency pairs aligned between Q and K: RoPE turns them into a preference for
        # nearby keys.
        common = rng.standard_normal((1, 8)) * 3.0
        q[:, :8] += common
        k[:, :8] += common
        q[:, half:half + 8] += common
        k[:, half:half + 8] += common
    q = rope(q, theta)
    k = rope(k, theta)
    if local == "previous":
        # A previous-token head: every pair carries one shared direction, Q rotated to the
        # position before its own, so q_i · k_j peaks at j = i - 1 (by 6-9 nats) and decays
        # with |i - 1 - j| through the slow pairs: one sharp key over a long, graded tail.
        u = rng.standard_normal(d)
        u *= np.sqrt(rng.uniform(6.0, 9.0) * np.sqrt(d) / (u @ u))
        positions = np.arange(n)
        q += rope(np.tile(u, (n, 1)), theta)[np.maximum(positions - 1, 0)]
        k += rope(np.tile(u, (n, 1)), theta)
    elif local == "retrieval":
        # Each query matches a few earlier keys strongly (an induction or retrieval head).
        for i in range(64, n):
            targets = rng.integers(0, i, size=3)
            q[i] += 0.8 * k[targets].sum(0) / np.sqrt(d) * 4.0
    # Scale Q so that a row's scores spread by `temperature` · 1.5 nats (standard deviation
    # over keys, median over rows), as in trained models.
    sm = 1.0 / np.sqrt(d)
    spread = np.median((q[::16] @ k.T * sm).std(1))
    q *= temperature * 1.5 / spread
    # Sinks: keys along the queries' mean direction (which the slow RoPE pairs keep nearly
    # fixed), scaled so that their score stands `sink` nats above a row's median score.
    sink_positions = [0] if sink > 0 else []
    if mid_sinks:
        sink_positions += list(rng.choice(np.arange(64, n), size=min(mid_sinks, n - 64), replace=False))
    v = rng.standard_normal((n, d))
    v += rng.standard_normal(d) * 0.5  # per-channel offsets
    heavy = rng.choice(d, size=3, replace=False)
    v[:, heavy] *= 6.0
    qmean = q.mean(0)
    direction = qmean / (qmean @ qmean)
    rows = q[::16]
    median = np.median(rows @ k.T * sm, axis=1)
    along = rows @ direction * sm
    for i, p in enumerate(sink_positions):
        strength = sink if i == 0 else sink * rng.uniform(0.6, 0.9)
        k[p] = direction * np.median((median + strength) / along)
        v[p] *= 0.05
    return q.astype(np.float32), k.astype(np.float32), v.astype(np.float32)


def make_set(n=2048, seed=0, d=None):
    """[H, N, D] float32 arrays for every head kind (one head per kind)."""
    rng = np.random.default_rng(seed)
    heads = [make_head(kind, n, rng, d) for kind in HEAD_KINDS]
    return tuple(np.stack([h[i] for h in heads]) for i in range(3))


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "realistic"
    os.makedirs(folder, exist_ok=True)
    for n, d, seed in ((2048, 128, 1), (4096, 128, 2), (2048, 64, 3)):
        q, k, v = make_set(n, seed, d)
        name = f"realistic_n{n}_d{d}"
        for t, x in zip("qkv", (q, k, v)):
            np.save(os.path.join(folder, f"{name}_{t}.npy"), x.astype(np.float16).astype(np.float32))
        print(os.path.join(folder, name))


if __name__ == "__main__":
    main()
