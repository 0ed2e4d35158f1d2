"""Packed variable-length attention (``intfa.attention_varlen``), as FlashAttention's varlen API
takes a batch of prompts of different lengths: every sequence's tokens one after another in
[total_tokens, heads, head_dim] tensors and cumulative offsets saying where each starts."""

import ctypes
import math
import numbers

from . import _lib


def _offsets(x, name):
    """A list of ints from a 1-D int tensor (CPU, or CUDA: copied to the host, which waits for
    the stream) or a sequence of ints."""
    import torch
    if isinstance(x, torch.Tensor):
        if x.ndim != 1 or x.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must be a 1-D int32 or int64 tensor, not {x.dtype} with {x.ndim} dimensions")
        return [int(n) for n in x.tolist()]
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in x):
        raise TypeError(f"{name} must hold ints")
    return [int(n) for n in x]


def attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None, *, is_causal=False,
                     scale=None, method="int8"):
    """Attention of a packed batch: ``q`` [total_q, H, D], ``k`` and ``v`` [total_k, Hkv, D]
    float16/bfloat16 CUDA tensors (head dim contiguous), ``cu_seqlens_q`` and ``cu_seqlens_k``
    the B + 1 cumulative offsets from 0 (int tensors or lists). Sequence b's queries
    ``q[cu_seqlens_q[b]:cu_seqlens_q[b + 1]]`` attend to its own keys only, as
    ``intfa.attention`` on that sequence would (bottom-right causal per sequence).
    ``max_seqlen_q`` and ``max_seqlen_k`` (FlashAttention's arguments) are checked against the
    offsets when given. ``method``: "int8" or "fp16" (or another of ``intfa.attention``'s CUDA
    methods). Returns the output like q.

    A pack whose sequences all have the same lengths runs as one dense call; many short causal
    prompts (as many queries as keys each, at least 8, padding to at most twice their tokens)
    as one padded dense call, each sequence quantized with its own statistics; other mixed
    lengths as one dense call per sequence on torch's current stream (views, no copies).
    Offsets given as CUDA tensors are copied to the host first, which waits for the stream.
    """
    import torch
    from . import _check_options, _eager, _ops
    _check_options(method, "bnhd", scale, {"is_causal": is_causal})
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor) or not x.is_cuda:
            raise TypeError(f"{name} must be a CUDA torch tensor")
        if x.ndim != 3:
            raise ValueError(f"{name} must have 3 dimensions (total tokens, heads, head dim), not {x.ndim}")
    cq, ck = _offsets(cu_seqlens_q, "cu_seqlens_q"), _offsets(cu_seqlens_k, "cu_seqlens_k")
    for name, given, offsets in (("max_seqlen_q", max_seqlen_q, cq), ("max_seqlen_k", max_seqlen_k, ck)):
        longest = max([b - a for a, b in zip(offsets, offsets[1:])] + [0])
        if given is not None and int(given) < longest:
            raise ValueError(f"{name}={given} is less than the longest sequence's {longest} tokens")
    if cq and (cq[-1] != q.shape[0]):
        raise ValueError(f"cu_seqlens_q ends at {cq[-1]}; q holds {q.shape[0]} tokens")
    if ck and (ck[-1] != k.shape[0] or ck[-1] != v.shape[0]):
        raise ValueError(f"cu_seqlens_k ends at {ck[-1]}; k and v hold {k.shape[0]} and {v.shape[0]} tokens")
    if _eager(q):
        return _attention_varlen_cuda(q, k, v, cq, ck, bool(is_causal), scale, method)
    return _ops().attention_varlen(q, k, v, cq, ck, bool(is_causal), None if scale is None else float(scale), method)


def _attention_varlen_cuda(q, k, v, cu_seqlens_q, cu_seqlens_k, is_causal, scale, method):
    import torch
    from . import _c_tensor_3d
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share one dtype (q: {q.dtype}, k: {k.dtype}, v: {v.dtype})")
    if len(cu_seqlens_q) != len(cu_seqlens_k) or not cu_seqlens_q:
        raise ValueError(f"cu_seqlens_q and cu_seqlens_k must hold B + 1 offsets each ({len(cu_seqlens_q)} and "
                         f"{len(cu_seqlens_k)})")
    batch = len(cu_seqlens_q) - 1
    problem = _lib.Problem(batch, q.shape[1], k.shape[1], 0, 0, q.shape[2], 0.0 if scale is None else float(scale),
                           int(is_causal), _lib.METHODS[method], 0)
    array = ctypes.c_int32 * (batch + 1)
    if max(cu_seqlens_q + cu_seqlens_k + [0]) >= 2**31:
        raise ValueError("offsets must fit in int32")
    cq, ck = array(*cu_seqlens_q), array(*cu_seqlens_k)
    views = [_c_tensor_3d(x, name) for x, name in ((q, "q"), (k, "k"), (v, "v"))]
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    size = ctypes.c_size_t()
    _lib.check(_lib.library().intfa_varlen_workspace_size(ctypes.byref(problem), cq, ck, views[0].dtype,
                                                          ctypes.byref(size)))
    workspace = torch.empty((max(size.value, 1),), dtype=torch.uint8, device=q.device)
    c = views + [_c_tensor_3d(out, "out")]
    _lib.check(_lib.library().intfa_attention_varlen(
        _lib.context(q.device.index), ctypes.byref(problem), None, *(ctypes.byref(t) for t in c), cq, ck,
        workspace.data_ptr(), size.value, torch.cuda.current_stream(q.device).cuda_stream))
    return out
