import numpy as np


def attention64(q, k, v, causal=False, scale=None):
    """float64 attention, [B, H, N, D] inputs, GQA by repeating K/V heads, bottom-right causal."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scale = scale if scale is not None else 1 / np.sqrt(q.shape[-1])
    s = np.einsum("bhnd,bhmd->bhnm", q, k) * scale
    if causal:
        nq, nk = q.shape[2], k.shape[2]
        mask = np.arange(nk)[None, :] > np.arange(nq)[:, None] + (nk - nq)
        s = np.where(mask, -np.inf, s)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    p = np.exp(s - m)
    l = p.sum(-1, keepdims=True)
    out = np.einsum("bhnm,bhmd->bhnd", p / np.where(l > 0, l, 1), v)
    lse = np.where(l[..., 0] > 0, np.log(np.where(l[..., 0] > 0, l[..., 0], 1)) + m[..., 0], -np.inf)
    return out, lse


def rel_l1(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).sum() / np.abs(b).sum())
