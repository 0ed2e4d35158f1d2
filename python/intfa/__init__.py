"""IntFlashAttention: FlashAttention forward with 8-bit integer arithmetic.

``intfa.attention(q, k, v)`` takes torch CUDA tensors (fp16/bf16; the GPU kernels, zero copy,
on torch's current stream) or numpy arrays and CPU torch tensors (the CPU kernels), with the
semantics of ``torch.nn.functional.scaled_dot_product_attention`` where they overlap.
"""

import ctypes
import math
from dataclasses import dataclass

from . import _lib
from ._lib import IntfaError

__all__ = ["attention", "quantize", "attention_quantized", "merge_partial", "QuantizedInputs", "IntfaError", "version", "__version__"]

__version__ = "0.2.0"

_LAYOUTS = ("bhnd", "bnhd")
_GRIDS = {None: 0, "persistent": 1, "tiles": 2}  # intfa_grid


def version():
    """The version of the loaded shared library."""
    return _lib.version()


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _is_torch(x):
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _is_numpy(x):
    try:
        import numpy
    except ImportError:
        return False
    return isinstance(x, numpy.ndarray)


@dataclass
class _View:
    """One tensor as the C interface sees it: [B, H, N, D] with element strides."""
    shape: tuple
    strides: tuple  # (batch, head, token)
    pointer: int
    dtype: int
    element_size: int

    def c(self):
        return _lib.Tensor(self.pointer, self.dtype, 0, *self.strides)


def _view(x, name, layout, gpu):
    if x.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions ({layout}), not {x.ndim}")
    if _is_torch(x):
        torch = _torch()
        codes = {torch.float16: _lib.DTYPE_FLOAT16, torch.bfloat16: _lib.DTYPE_BFLOAT16}
        if not gpu:
            codes[torch.float32] = _lib.DTYPE_FLOAT32
        if x.dtype not in codes:
            allowed = "float16 or bfloat16" if gpu else "float32, float16 or bfloat16"
            raise TypeError(f"{name} has dtype {x.dtype}; {'CUDA' if gpu else 'CPU'} tensors must be {allowed}")
        strides = tuple(x.stride())
        dtype, size, pointer = codes[x.dtype], x.element_size(), x.data_ptr()
    else:
        import numpy
        codes = {numpy.dtype(numpy.float32): _lib.DTYPE_FLOAT32, numpy.dtype(numpy.float16): _lib.DTYPE_FLOAT16}
        if x.dtype not in codes:
            raise TypeError(f"{name} has dtype {x.dtype}; numpy arrays must be float32 or float16")
        if any(s % x.itemsize for s in x.strides):
            raise ValueError(f"{name}'s strides are not whole elements")
        strides = tuple(s // x.itemsize for s in x.strides)
        dtype, size, pointer = codes[x.dtype], x.itemsize, x.ctypes.data
    if strides[3] != 1 and x.shape[3] > 1:
        raise ValueError(f"{name}'s last dimension (the head dim) must be contiguous (stride {strides[3]})")
    if layout == "bhnd":
        shape, element_strides = tuple(x.shape), (strides[0], strides[1], strides[2])
    else:
        shape, element_strides = (x.shape[0], x.shape[2], x.shape[1], x.shape[3]), (strides[0], strides[2], strides[1])
    return _View(shape, element_strides, pointer, dtype, size)


def _problem(q, k, method, is_causal, scale):
    if method not in _lib.METHODS:
        raise ValueError(f"unknown method {method!r}; one of {', '.join(_lib.METHODS)}")
    b, h, nq, d = q.shape
    if k.shape[0] != b or k.shape[3] != d:
        raise ValueError(f"K has shape {k.shape} (B, Hkv, Nk, D), incompatible with Q's {q.shape}")
    if scale is not None and not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite positive number, not {scale!r}")
    return _lib.Problem(b, h, k.shape[1], nq, k.shape[2], d, float(scale or 0.0), int(bool(is_causal)),
                        _lib.METHODS[method], 0)


def _check_layout(layout):
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be 'bhnd' or 'bnhd', not {layout!r}")


def _output_shape(view, layout):
    b, h, n, d = view.shape
    return (b, h, n, d) if layout == "bhnd" else (b, n, h, d)


def attention(q, k, v, *, is_causal=False, scale=None, method="int8", layout="bhnd", return_lse=False, validate=None):
    """Attention of q over k, v.

    q: [B, H, Nq, D], k and v: [B, Hkv, Nk, D] (``layout="bhnd"``) or [B, N, H, D]
    (``"bnhd"``); H a multiple of Hkv (GQA, MQA). The head dim must be contiguous; other
    strides are free (views need no copy). ``is_causal`` masks bottom-right aligned: row i
    sees key j iff j <= i + Nk - Nq (SDPA's convention when Nq == Nk). ``scale`` defaults to
    1/sqrt(D). ``method``: "int8" (default scheme), "int8-paper", "fp8-e4m3", "fp16", and
    "fp32" on the CPU. Returns the output in q's layout and dtype, and with ``return_lse`` also
    the log-sum-exp of each row's scaled scores [B, H, Nq] (float32, natural log; -inf for a
    row that sees no key), so that partial results over key blocks merge exactly.

    torch CUDA tensors run on the GPU, queued on torch's current stream without host
    synchronization (the workspace comes from torch's caching allocator). numpy arrays and
    CPU torch tensors run on the CPU. ``validate`` (default: on for the CPU, off for CUDA,
    where it synchronizes) rejects NaN/Inf inputs with ValueError.
    """
    _check_layout(layout)
    tensors = (q, k, v)
    if not all(_is_torch(x) or _is_numpy(x) for x in tensors):
        raise TypeError("q, k and v must be torch tensors or numpy arrays")
    cuda = [_is_torch(x) and x.is_cuda for x in tensors]
    if any(cuda) and not all(cuda):
        raise ValueError("q, k and v must all be CUDA tensors or all be on the CPU")
    if all(cuda):
        devices = {x.device for x in tensors}
        if len(devices) != 1:
            raise ValueError(f"q, k and v are on different devices: {sorted(map(str, devices))}")
        return _attention_cuda(q, k, v, is_causal, scale, method, layout, return_lse, bool(validate))
    return _attention_host(q, k, v, is_causal, scale, method, layout, return_lse, validate is None or validate)


def _attention_host(q, k, v, is_causal, scale, method, layout, return_lse, validate):
    views = [_view(x, name, layout, gpu=False) for x, name in ((q, "q"), (k, "k"), (v, "v"))]
    problem = _problem(views[0], views[1], method, is_causal, scale)
    shape = _output_shape(views[0], layout)
    b, h, nq = views[0].shape[:3]
    if _is_torch(q):
        torch = _torch()
        out = torch.empty(shape, dtype=q.dtype)
        lse = torch.empty((b, h, nq), dtype=torch.float32) if return_lse else None
        lse_pointer = lse.data_ptr() if lse is not None else None
    else:
        import numpy
        out = numpy.empty(shape, dtype=q.dtype)
        lse = numpy.empty((b, h, nq), dtype=numpy.float32) if return_lse else None
        lse_pointer = lse.ctypes.data if lse is not None else None
    out_view = _view(out, "out", layout, gpu=False)
    c = [x.c() for x in views] + [out_view.c()]
    _lib.check(_lib.library().intfa_attention_host(
        ctypes.byref(problem), *(ctypes.byref(t) for t in c), lse_pointer, int(validate), 0))
    if return_lse and method == "int8":
        _unsmooth(lse, q, k, layout, problem)
    return (out, lse) if return_lse else out


def _unsmooth(lse, q, k, layout, problem):
    """The int8 scheme subtracts K's channel mean before quantizing (docs/SCHEMES.md), which
    shifts every score of a row by -scale * (q . mean(K)): the softmax is unchanged, and the
    kernels' log-sum-exp is the shifted one. Adds the shift back, in place."""
    scale = problem.softmax_scale or 1.0 / math.sqrt(problem.head_dim)
    group = problem.heads // problem.kv_heads
    if _is_torch(lse):
        torch = _torch()
        qb, kb = (q, k) if layout == "bhnd" else (q.transpose(1, 2), k.transpose(1, 2))
        mean = kb.float().mean(dim=2).repeat_interleave(group, dim=1)  # [B, H, D]
        shift = torch.einsum("bhnd,bhd->bhn", qb.float(), mean) * scale
    else:
        import numpy
        qb, kb = (q, k) if layout == "bhnd" else (q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3))
        mean = numpy.repeat(kb.astype(numpy.float64).mean(axis=2), group, axis=1)
        shift = (numpy.einsum("bhnd,bhd->bhn", qb.astype(numpy.float64), mean) * scale).astype(numpy.float32)
    lse += shift


def _check_finite(tensors):
    torch = _torch()
    for name, x in tensors:
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} holds a non-finite value (NaN or Inf)")


def _workspace(torch, problem, dtype, device):
    size = ctypes.c_size_t()
    _lib.check(_lib.library().intfa_workspace_size(ctypes.byref(problem), dtype, ctypes.byref(size)))
    buffer = torch.empty(max(size.value, 1), dtype=torch.uint8, device=device)
    return buffer, size.value


def _attention_cuda(q, k, v, is_causal, scale, method, layout, return_lse, validate):
    torch = _torch()
    if validate:
        _check_finite((("q", q), ("k", k), ("v", v)))
    views = [_view(x, name, layout, gpu=True) for x, name in ((q, "q"), (k, "k"), (v, "v"))]
    problem = _problem(views[0], views[1], method, is_causal, scale)
    device = q.device
    out = torch.empty(_output_shape(views[0], layout), dtype=q.dtype, device=device)
    b, h, nq = views[0].shape[:3]
    lse = torch.empty((b, h, nq), dtype=torch.float32, device=device) if return_lse else None
    workspace, workspace_bytes = _workspace(torch, problem, views[0].dtype, device)
    stream = torch.cuda.current_stream(device).cuda_stream
    c = [x.c() for x in views] + [_view(out, "out", layout, gpu=True).c()]
    _lib.check(_lib.library().intfa_attention(
        _lib.context(device.index), ctypes.byref(problem), *(ctypes.byref(t) for t in c),
        lse.data_ptr() if lse is not None else None, workspace.data_ptr(), workspace_bytes, stream))
    if return_lse and method == "int8":
        _unsmooth(lse, q, k, layout, problem)
    return (out, lse) if return_lse else out


@dataclass
class QuantizedInputs:
    """Q, K, V in the GPU's pre-quantized form (docs/SCHEMES.md): the int8 codes and fp32
    scales as CUDA tensors, with the problem they were made for (the Q scales include the
    softmax scale)."""
    method: str
    q: object
    q_scale: object
    k: object
    k_scale: object
    vt: object
    v_scale: object
    batch: int
    heads: int
    kv_heads: int
    query_length: int
    key_length: int
    head_dim: int
    scale: float

    def _c(self):
        return _lib.Quantized(self.q.data_ptr(), self.q_scale.data_ptr(), self.k.data_ptr(),
                              self.k_scale.data_ptr(), self.vt.data_ptr(), self.v_scale.data_ptr())

    def _problem(self, is_causal, grid=0):
        return _lib.Problem(self.batch, self.heads, self.kv_heads, self.query_length, self.key_length,
                            self.head_dim, float(self.scale or 0.0), int(bool(is_causal)), _lib.METHODS[self.method], grid)


def quantize(q, k, v, *, method="int8", scale=None, layout="bhnd", k_mean=None, v_amax=None):
    """Quantizes CUDA q, k, v (fp16/bf16) into the form ``attention_quantized`` reads, on
    torch's current stream: for callers that keep INT8 K/V caches, or produce INT8 directly.

    ``k_mean`` (K's per-channel mean over the tokens) and ``v_amax`` (V's per-channel max |v|),
    float32 CUDA tensors [B, Hkv, D], both or neither, replace the statistics measured from k
    and v: pieces of one sequence then quantize exactly as the whole sequence would."""
    _check_layout(layout)
    torch = _torch()
    if not all(_is_torch(x) and x.is_cuda for x in (q, k, v)):
        raise TypeError("quantize takes CUDA torch tensors")
    if method not in ("int8", "int8-paper", "fp8-e4m3"):
        raise ValueError(f"method {method!r} has no quantized form; use int8, int8-paper or fp8-e4m3")
    views = [_view(x, name, layout, gpu=True) for x, name in ((q, "q"), (k, "k"), (v, "v"))]
    problem = _problem(views[0], views[1], method, False, scale)
    sizes = _lib.QuantizedSizes()
    _lib.check(_lib.library().intfa_quantized_byte_counts(ctypes.byref(problem), ctypes.byref(sizes)))
    device = q.device
    def buffer(count, dtype):
        element = torch.tensor([], dtype=dtype).element_size()
        return torch.empty(max(count // element, 1), dtype=dtype, device=device)
    result = QuantizedInputs(
        method, buffer(sizes.q, torch.int8), buffer(sizes.q_scale, torch.float32), buffer(sizes.k, torch.int8),
        buffer(sizes.k_scale, torch.float32), buffer(sizes.vt, torch.int8), buffer(sizes.v_scale, torch.float32),
        problem.batch, problem.heads, problem.kv_heads, problem.query_length, problem.key_length, problem.head_dim,
        scale)
    statistics = [None, None]
    if (k_mean is None) != (v_amax is None):
        raise ValueError("give both k_mean and v_amax, or neither")
    if k_mean is not None:
        shape = (problem.batch, problem.kv_heads, problem.head_dim)
        for name, x in (("k_mean", k_mean), ("v_amax", v_amax)):
            if not (_is_torch(x) and x.is_cuda and x.dtype == torch.float32 and tuple(x.shape) == shape
                    and x.is_contiguous() and x.device == device):
                raise ValueError(f"{name} must be a contiguous float32 CUDA tensor {list(shape)} on {device}")
        statistics = [k_mean.data_ptr(), v_amax.data_ptr()]
    workspace, workspace_bytes = _workspace(torch, problem, views[0].dtype, device)
    destination = result._c()
    _lib.check(_lib.library().intfa_quantize(
        _lib.context(device.index), ctypes.byref(problem), *(ctypes.byref(x.c()) for x in views), *statistics,
        ctypes.byref(destination), workspace.data_ptr(), workspace_bytes, torch.cuda.current_stream(device).cuda_stream))
    return result


def attention_quantized(inputs, *, is_causal=False, dtype=None, layout="bhnd", return_lse=False, grid=None):
    """Attention on ``quantize``'s result; the output is fp16 (or ``dtype``: torch.float16 or
    torch.bfloat16) in ``layout``. With "int8" the log-sum-exp is that of the smoothed scores:
    the exact one minus scale * (q . mean(K)) per row (K's channel mean, docs/SCHEMES.md),
    since the codes no longer hold q or the mean.

    ``grid`` sets the Hopper kernel's launch grid for this call: None (the default policy),
    "persistent" (one CTA per SM looping over tiles) or "tiles" (one CTA per tile, for calls
    that share the GPU with other kernels, such as NCCL's during a ring). Results are the same
    under every grid."""
    if grid not in _GRIDS:
        raise ValueError(f"grid must be None, 'persistent' or 'tiles', not {grid!r}")
    _check_layout(layout)
    torch = _torch()
    if not isinstance(inputs, QuantizedInputs):
        raise TypeError("attention_quantized takes the QuantizedInputs that quantize returns")
    dtype = dtype or torch.float16
    if dtype not in (torch.float16, torch.bfloat16):
        raise TypeError(f"the output dtype must be torch.float16 or torch.bfloat16, not {dtype}")
    device = inputs.q.device
    b, h, nq, d = inputs.batch, inputs.heads, inputs.query_length, inputs.head_dim
    out = torch.empty((b, h, nq, d) if layout == "bhnd" else (b, nq, h, d), dtype=dtype, device=device)
    lse = torch.empty((b, h, nq), dtype=torch.float32, device=device) if return_lse else None
    problem = inputs._problem(is_causal, _GRIDS[grid])
    source = inputs._c()
    _lib.check(_lib.library().intfa_attention_quantized(
        _lib.context(device.index), ctypes.byref(problem), ctypes.byref(source),
        ctypes.byref(_view(out, "out", layout, gpu=True).c()), lse.data_ptr() if lse is not None else None,
        torch.cuda.current_stream(device).cuda_stream))
    return (out, lse) if return_lse else out


def merge_partial(out, lse, part, part_lse):
    """Merges a partial attention result into an accumulator, in place, in one pass on torch's
    current stream: ``out`` float32 and ``part`` float16/bfloat16 [B, H, N, D] CUDA tensors
    (views allowed; head dim contiguous, a multiple of 4), ``lse`` and ``part_lse`` float32
    [B, H, N] with the last dimension contiguous. With l = logaddexp(lse, part_lse):
    out = out * exp(lse - l) + part * exp(part_lse - l) and lse = l; a row with -inf in one
    takes the other's result. ``part`` and ``part_lse`` are what ``attention(...,
    return_lse=True)`` or ``attention_quantized(..., return_lse=True)`` return for one key
    set; merging the sets' results gives the attention over all of them."""
    torch = _torch()
    tensors = (out, lse, part, part_lse)
    if not all(_is_torch(x) and x.is_cuda for x in tensors):
        raise TypeError("merge_partial takes CUDA torch tensors")
    if len({x.device for x in tensors}) != 1:
        raise ValueError("out, lse, part and part_lse must be on one device")
    if out.dtype != torch.float32 or out.ndim != 4:
        raise TypeError(f"out must be a float32 [B, H, N, D] tensor, not {out.dtype} with {out.ndim} dimensions")
    if part.shape != out.shape:
        raise ValueError(f"part has shape {tuple(part.shape)}, out {tuple(out.shape)}")
    b, h, n, d = out.shape
    for name, x in (("lse", lse), ("part_lse", part_lse)):
        if x.dtype != torch.float32 or tuple(x.shape) != (b, h, n):
            raise ValueError(f"{name} must be a float32 tensor of shape {[b, h, n]}")
    if out.stride(3) != 1:
        raise ValueError("out's last dimension (the head dim) must be contiguous")
    c_out = _lib.Tensor(out.data_ptr(), _lib.DTYPE_FLOAT32, 0, *out.stride()[:3])
    c_part = _view(part, "part", "bhnd", gpu=True).c()
    c_lse, c_part_lse = (_lib.Tensor(x.data_ptr(), _lib.DTYPE_FLOAT32, 0, x.stride(0), x.stride(1), x.stride(2))
                         for x in (lse, part_lse))
    _lib.check(_lib.library().intfa_merge_partial(
        _lib.context(out.device.index), b, h, n, d, ctypes.byref(c_out), ctypes.byref(c_lse), ctypes.byref(c_part),
        ctypes.byref(c_part_lse), torch.cuda.current_stream(out.device).cuda_stream))
