"""IntFlashAttention: FlashAttention forward with 8-bit integer arithmetic.

``intfa.attention(q, k, v)`` takes torch CUDA tensors (fp16/bf16; the GPU kernels, zero copy,
on torch's current stream) or numpy arrays and CPU torch tensors (the CPU kernels), with the
semantics of ``torch.nn.functional.scaled_dot_product_attention`` where they overlap.
``intfa.KVCache`` and ``intfa.decode`` serve decode steps from a paged INT8 KV cache.
"""

import ctypes
import math
import numbers
import sys
from dataclasses import dataclass

from . import _lib
from ._lib import IntfaError, UnsupportedError
from .kv_cache import KVCache, decode, _decode_cuda, _kv_append_cuda
from .varlen import attention_varlen, _attention_varlen_cuda

__all__ = ["attention", "attention_varlen", "quantize", "attention_quantized", "merge_partial", "QuantizedInputs",
           "KVCache", "decode", "IntfaError", "UnsupportedError", "version", "__version__"]

__version__ = "0.2.0"

_LAYOUTS = ("bhnd", "bnhd")
# Methods of the Swift API and the intfa command that the C interface does not offer.
_SWIFT_ONLY_METHODS = ("int4", "fp8-e5m2")
_MAX_HEAD_DIM = 256
# Values that fp16 rounds to +-inf: the fp16 method's inputs must stay below.
_FP16_OVERFLOW = 65520.0
_FLOAT32_MAX = 3.4028234663852886e38


def version():
    """The version of the loaded shared library."""
    return _lib.version()


def _torch():
    """torch if the process has imported it, else None: a torch tensor cannot exist without it,
    and trying the import on every call costs more than a small attention."""
    return sys.modules.get("torch")


def _traced(torch, x):
    """Whether a CUDA call is being traced (torch.compile, export, fake tensors) rather than
    run: it then goes through its custom op, which the tracer records as one node. Run
    eagerly, the direct call skips the op dispatcher (about 45 us a call on the H200's host)."""
    return torch.compiler.is_compiling() or type(x) is not torch.Tensor


_ops_registered = False


def _eager(x):
    """Whether a CUDA entry point runs directly on `x` (not traced); it then registers the
    custom ops first if need be, so that a later torch.compile of its caller finds them."""
    if _traced(_torch(), x):
        return False
    if not _ops_registered:
        _register_ops()
    return True


def _register_ops():
    """Registers the package's torch.library ops (intfa._torch_ops): at import when torch is
    already imported, else at the first call with torch tensors. It cannot happen inside a
    torch.compile trace, which does not run registration code."""
    global _ops_registered
    from . import _torch_ops
    _torch_ops.register(sys.modules[__name__])
    _ops_registered = True


def _ops():
    """torch.ops.intfa, the package's custom ops."""
    torch = _torch()
    if not _ops_registered:
        if torch.compiler.is_compiling():
            raise RuntimeError("intfa's torch ops are registered when intfa is imported after torch, or at its first "
                               "eager call; import torch before intfa to compile a function that calls it")
        _register_ops()
    return torch.ops.intfa


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
    """The C interface's view of x: element type, element strides, pointer. Shapes are
    checked against each other by _problem; this checks what one tensor must be."""
    if x.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions ({_dims(layout, name)}), not {x.ndim}: shape {_shape(x)}")
    if _is_torch(x):
        torch = _torch()
        codes = {torch.float16: _lib.DTYPE_FLOAT16, torch.bfloat16: _lib.DTYPE_BFLOAT16}
        if not gpu:
            codes[torch.float32] = _lib.DTYPE_FLOAT32
        if x.dtype not in codes:
            allowed = "float16 or bfloat16" if gpu else "float32, float16 or bfloat16"
            raise TypeError(f"{name} has dtype {x.dtype}; {'CUDA' if gpu else 'CPU'} tensors must be {allowed}")
        strides = tuple(x.stride())
        dtype, size, pointer, empty = codes[x.dtype], x.element_size(), x.data_ptr(), x.numel() == 0
    else:
        import numpy
        codes = {numpy.dtype(numpy.float32): _lib.DTYPE_FLOAT32, numpy.dtype(numpy.float16): _lib.DTYPE_FLOAT16}
        if x.dtype not in codes:
            raise TypeError(f"{name} has dtype {x.dtype}; numpy arrays must be float32 or float16 (native byte order)")
        if any(s % x.itemsize for s in x.strides):
            raise ValueError(f"{name}'s strides {x.strides} (bytes) are not whole {x.itemsize}-byte elements")
        strides = tuple(s // x.itemsize for s in x.strides)
        dtype, size, pointer, empty = codes[x.dtype], x.itemsize, x.ctypes.data, x.size == 0
    if empty:
        # An empty tensor's strides mean nothing (numpy reports 0): nothing is read or written.
        strides = (0, 0, 0, 1)
    if any(s < 0 for s in strides):
        raise ValueError(f"{name} has a negative stride {strides} (elements); pass a copy (e.g. numpy.ascontiguousarray)")
    if strides[3] != 1 and x.shape[3] > 1:
        raise ValueError(f"{name}'s last dimension (the head dim) must be contiguous: its stride is {strides[3]} "
                         f"elements, not 1 (shape {_shape(x)}, strides {strides})")
    if layout == "bhnd":
        shape, element_strides = tuple(x.shape), (strides[0], strides[1], strides[2])
    else:
        shape, element_strides = (x.shape[0], x.shape[2], x.shape[1], x.shape[3]), (strides[0], strides[2], strides[1])
    return _View(tuple(int(n) for n in shape), element_strides, pointer, dtype, size)


def _c_tensor_3d(x, name):
    """The C view of a packed [total tokens, heads, head dim] fp16/bf16 CUDA tensor (the batch
    stride is unused)."""
    torch = _torch()
    codes = {torch.float16: _lib.DTYPE_FLOAT16, torch.bfloat16: _lib.DTYPE_BFLOAT16}
    if x.dtype not in codes:
        raise TypeError(f"{name} has dtype {x.dtype}; CUDA tensors must be float16 or bfloat16")
    if x.stride(2) != 1 and x.shape[2] > 1:
        raise ValueError(f"{name}'s last dimension (the head dim) must be contiguous")
    if x.stride(0) < 0 or x.stride(1) < 0:
        raise ValueError(f"{name} has a negative stride {tuple(x.stride())}")
    return _lib.Tensor(x.data_ptr(), codes[x.dtype], 0, 0, x.stride(1), x.stride(0))


def _shape(x):
    return tuple(int(n) for n in x.shape)


def _dims(layout, name):
    """The dimension names of a tensor in a layout, e.g. "B, Hkv, Nk, D"."""
    h, n = ("H", "Nq") if name in ("q", "out") else ("Hkv", "Nk")
    return f"B, {h}, {n}, D" if layout == "bhnd" else f"B, {n}, {h}, D"


def _problem(q, k, v, method, is_causal, scale, layout):
    """The C problem of views q, k, v ([B, H, N, D] whatever the layout), after checking each
    shape against the others; messages show the shapes as the caller passed them."""
    def shown(view):
        b, h, n, d = view.shape
        return (b, h, n, d) if layout == "bhnd" else (b, n, h, d)
    qn, kn, vn = "q", "k", "v"
    b, h, nq, d = q.shape
    _, hkv, nk, dk = k.shape
    where = f"layout {layout!r}: q [{_dims(layout, 'q')}], k and v [{_dims(layout, 'k')}]"
    if k.shape[0] != b or dk != d:
        raise ValueError(f"{kn} has shape {shown(k)}, incompatible with {qn}'s {shown(q)}: batch and head dim must "
                         f"match ({where})")
    if v.shape != k.shape:
        raise ValueError(f"{vn} has shape {shown(v)}, expected {kn}'s shape {shown(k)} ({where})")
    if h < 1 or hkv < 1:
        raise ValueError(f"{qn} {shown(q)} and {kn} {shown(k)} need at least one head each ({where})")
    if h % hkv:
        raise ValueError(f"{qn}'s heads ({h}) must be a multiple of {kn}'s ({hkv}): shapes {shown(q)} and "
                         f"{shown(k)} ({where})")
    if nk < 1:
        raise ValueError(f"{kn} and {vn} have no tokens (shape {shown(k)}): attention needs at least one key ({where})")
    if not (8 <= d <= _MAX_HEAD_DIM and d % 8 == 0):
        raise ValueError(f"head dim {d} (shape of {qn} {shown(q)}) is not supported: it must be a multiple of 8 "
                         f"between 8 and {_MAX_HEAD_DIM}")
    return _lib.Problem(b, h, hkv, nq, nk, d, _softmax_scale(scale), int(is_causal), _lib.METHODS[method], 0)


def _softmax_scale(scale):
    """The C problem's softmax scale: 0 selects 1/sqrt(D)."""
    return 0.0 if scale is None else float(scale)


def _check_options(method, layout, scale, flags, methods=None):
    """Checks the options every entry point shares; `flags` maps names to values that must be
    bool (numpy bools included) or, for `validate`, None."""
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, not {type(method).__name__} ({method!r})")
    methods = methods or tuple(_lib.METHODS)
    if method not in methods:
        if method in _lib.METHODS:
            raise ValueError(f"method {method!r} has no quantized form; use {', '.join(methods)}")
        if method in _SWIFT_ONLY_METHODS:
            raise ValueError(f"method {method!r} runs only in the Swift API and the intfa command; "
                             f"this interface has {', '.join(methods)}")
        raise ValueError(f"unknown method {method!r}; one of {', '.join(methods)}")
    if not isinstance(layout, str):
        raise TypeError(f"layout must be a string, 'bhnd' or 'bnhd', not {type(layout).__name__}")
    _check_layout(layout)
    for name, value in flags.items():
        if value is None and name == "validate":
            continue
        if not _is_bool(value):
            allowed = "True, False or None" if name == "validate" else "True or False"
            raise TypeError(f"{name} must be {allowed}, not {value!r}")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(f"scale must be a real number or None, not {type(scale).__name__} ({scale!r})")
        value = float(scale)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"scale must be a finite positive number, not {value!r}")
        single = ctypes.c_float(value).value
        if not math.isfinite(single) or value > _FLOAT32_MAX:
            raise ValueError(f"scale {value!r} is beyond float32's range (largest {_FLOAT32_MAX:.8g}); "
                             f"the kernels take a float32 scale")
        if single == 0:
            raise ValueError(f"scale {value!r} rounds to 0 in float32; the kernels take a float32 scale")


def _is_bool(value):
    if isinstance(value, bool):
        return True
    try:
        import numpy
    except ImportError:
        return False
    return isinstance(value, numpy.bool_)


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
    where it synchronizes) rejects NaN/Inf inputs with ValueError, and with ``method="fp16"``
    values that overflow fp16 (|x| >= 65520). Without it the CPU path returns NaN in exactly
    the rows such a value reaches (its query row, every row that sees its key) and computes
    the others as if it were 0; the CUDA kernels give the same result.

    Raises TypeError for wrong types, ValueError for bad values and shapes (UnsupportedError
    where this device has no kernel), MemoryError when memory cannot be had, IntfaError for
    driver and CUDA failures.
    """
    _check_options(method, layout, scale, {"is_causal": is_causal, "return_lse": return_lse, "validate": validate})
    tensors = (q, k, v)
    if not all(_is_torch(x) or _is_numpy(x) for x in tensors):
        kinds = ", ".join(f"{n}: {type(x).__name__}" for n, x in zip("qkv", tensors))
        raise TypeError(f"q, k and v must be torch tensors or numpy arrays ({kinds})")
    cuda = [_is_torch(x) and x.is_cuda for x in tensors]
    if any(cuda) and not all(cuda):
        places = ", ".join(f"{n}: {'CUDA' if c else 'CPU'}" for n, c in zip("qkv", cuda))
        raise ValueError(f"q, k and v must all be CUDA tensors or all be on the CPU ({places})")
    is_causal, return_lse = bool(is_causal), bool(return_lse)
    if all(cuda):
        devices = {x.device for x in tensors}
        if len(devices) != 1:
            raise ValueError(f"q, k and v are on different devices: {sorted(map(str, devices))}")
        if _eager(q):
            return _attention_cuda(q, k, v, is_causal, scale, method, layout, return_lse, bool(validate))
        out, lse = _ops().attention(
            q, k, v, is_causal, None if scale is None else float(scale), method, layout, return_lse, bool(validate))
        return (out, lse) if return_lse else out
    return _attention_host(q, k, v, is_causal, scale, method, layout, return_lse, validate is None or bool(validate))


def _attention_host(q, k, v, is_causal, scale, method, layout, return_lse, validate):
    views = [_view(x, name, layout, gpu=False) for x, name in ((q, "q"), (k, "k"), (v, "v"))]
    problem = _problem(*views, method, is_causal, scale, layout)
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
    return (out, lse) if return_lse else out


def _check_finite(tensors, method):
    """validate=True on CUDA tensors: NaN or Inf anywhere, or for the fp16 method a bf16 value
    that fp16 cannot hold, is a ValueError naming the tensor (this synchronizes)."""
    torch = _torch()
    for name, x in tensors:
        if not bool(torch.isfinite(x).all()):
            index = int(torch.nonzero(~torch.isfinite(x).reshape(-1))[0, 0])
            raise ValueError(f"{name} holds a non-finite value (NaN or Inf) at flat index {index} of shape {_shape(x)}")
        if method == "fp16" and x.dtype == torch.bfloat16 and bool((x.abs() >= _FP16_OVERFLOW).any()):
            raise ValueError(f"{name} holds a value beyond fp16's range (largest finite 65504), which overflows: "
                             f"method fp16 converts bfloat16 inputs to fp16")


def _cuda_empty(torch, shape, dtype, device, what):
    """torch.empty on a CUDA device, with running out of memory as a MemoryError naming the bytes."""
    try:
        return torch.empty(shape, dtype=dtype, device=device)
    except torch.cuda.OutOfMemoryError as error:
        count = math.prod(shape) * torch.tensor([], dtype=dtype).element_size()
        raise MemoryError(f"out of GPU memory: {count} bytes requested for {what} on {device}: {error}") from error


def _workspace(torch, problem, dtype, device):
    size = ctypes.c_size_t()
    _lib.check(_lib.library().intfa_workspace_size(ctypes.byref(problem), dtype, ctypes.byref(size)))
    buffer = _cuda_empty(torch, (max(size.value, 1),), torch.uint8, device, "the workspace")
    return buffer, size.value


def _attention_cuda(q, k, v, is_causal, scale, method, layout, return_lse, validate):
    torch = _torch()
    views = [_view(x, name, layout, gpu=True) for x, name in ((q, "q"), (k, "k"), (v, "v"))]
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share one dtype on the GPU (q: {q.dtype}, k: {k.dtype}, v: {v.dtype})")
    problem = _problem(*views, method, is_causal, scale, layout)
    if validate:
        _check_finite((("q", q), ("k", k), ("v", v)), method)
    device = q.device
    out = _cuda_empty(torch, _output_shape(views[0], layout), q.dtype, device, "the output")
    b, h, nq = views[0].shape[:3]
    lse = _cuda_empty(torch, (b, h, nq), torch.float32, device, "the log-sum-exp") if return_lse else None
    workspace, workspace_bytes = _workspace(torch, problem, views[0].dtype, device)
    stream = torch.cuda.current_stream(device).cuda_stream
    c = [x.c() for x in views] + [_view(out, "out", layout, gpu=True).c()]
    _lib.check(_lib.library().intfa_attention(
        _lib.context(device.index), ctypes.byref(problem), None, *(ctypes.byref(t) for t in c),
        lse.data_ptr() if lse is not None else None, workspace.data_ptr(), workspace_bytes, stream))
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

    def _problem(self, is_causal):
        return _lib.Problem(self.batch, self.heads, self.kv_heads, self.query_length, self.key_length,
                            self.head_dim, float(self.scale or 0.0), int(bool(is_causal)), _lib.METHODS[self.method], 0)

    def _validate(self, torch):
        """Refuses fields that the kernels would read out of bounds: every buffer must be a
        contiguous CUDA tensor of its dtype on q's device holding the bytes of the problem."""
        if self.method not in ("int8", "int8-paper", "fp8-e4m3"):
            raise ValueError(f"method {self.method!r} has no quantized form; use int8, int8-paper or fp8-e4m3")
        for name in ("batch", "heads", "kv_heads", "query_length", "key_length", "head_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"QuantizedInputs.{name} must be an integer, not {value!r}")
        sizes = _quantized_sizes(self._problem(False))
        codes = torch.int8 if self.method != "fp8-e4m3" else (torch.int8, torch.uint8, getattr(torch, "float8_e4m3fn", None))
        device = getattr(self.q, "device", None)
        for name, dtype in (("q", codes), ("q_scale", torch.float32), ("k", codes), ("k_scale", torch.float32),
                            ("vt", codes), ("v_scale", torch.float32)):
            x = getattr(self, name)
            allowed = dtype if isinstance(dtype, tuple) else (dtype,)
            if not (_is_torch(x) and x.is_cuda):
                raise TypeError(f"QuantizedInputs.{name} must be a CUDA tensor, not {type(x).__name__}")
            if x.dtype not in allowed:
                raise TypeError(f"QuantizedInputs.{name} has dtype {x.dtype}; expected {allowed[0]}")
            if x.device != device:
                raise ValueError(f"QuantizedInputs.{name} is on {x.device}, q on {device}")
            if not x.is_contiguous():
                raise ValueError(f"QuantizedInputs.{name} must be contiguous")
            needed = getattr(sizes, name)
            if x.numel() * x.element_size() < needed:
                raise ValueError(f"QuantizedInputs.{name} holds {x.numel() * x.element_size()} bytes; the problem "
                                 f"(B={self.batch}, H={self.heads}, Hkv={self.kv_heads}, Nq={self.query_length}, "
                                 f"Nk={self.key_length}, D={self.head_dim}) needs {needed}")


def _quantized_sizes(problem):
    """The bytes of each buffer of the quantized form of `problem` (a _lib.Problem), as the
    library lays it out (intfa_quantized_byte_counts)."""
    sizes = _lib.QuantizedSizes()
    _lib.check(_lib.library().intfa_quantized_byte_counts(ctypes.byref(problem), ctypes.byref(sizes)))
    return sizes


def quantize(q, k, v, *, method="int8", scale=None, layout="bhnd", k_mean=None, v_amax=None):
    """Quantizes CUDA q, k, v (fp16/bf16) into the form ``attention_quantized`` reads, on
    torch's current stream: for callers that keep INT8 K/V caches, or produce INT8 directly.

    ``k_mean`` (K's per-channel mean over the tokens) and ``v_amax`` (V's per-channel max |v|),
    float32 CUDA tensors [B, Hkv, D], both or neither, replace the statistics measured from k
    and v: pieces of one sequence then quantize exactly as the whole sequence would."""
    _check_options(method, layout, scale, {}, methods=("int8", "int8-paper", "fp8-e4m3"))
    torch = _torch()
    if not all(_is_torch(x) and x.is_cuda for x in (q, k, v)):
        raise TypeError("quantize takes CUDA torch tensors")
    if (k_mean is None) != (v_amax is None):
        raise ValueError("give both k_mean and v_amax, or neither")
    scale = None if scale is None else float(scale)
    if _eager(q):
        return _quantize_cuda(q, k, v, method, scale, layout, k_mean, v_amax)
    buffers = _ops().quantize(q, k, v, method, scale, layout, k_mean, v_amax)
    (h, nq), (hkv, nk) = ((q.shape[1], q.shape[2]), (k.shape[1], k.shape[2])) if layout == "bhnd" else \
        ((q.shape[2], q.shape[1]), (k.shape[2], k.shape[1]))
    return QuantizedInputs(method, *buffers, q.shape[0], h, hkv, nq, nk, q.shape[3], scale)


def _quantized_buffers(torch, shape, method):
    """(element count, dtype) of the six buffers of the quantized form of a problem with
    `shape` (B, H, Hkv, Nq, Nk, D): codes as int8, scales as float32, each at least one
    element."""
    problem = _lib.Problem(*shape[:5], shape[5], 0.0, 0, _lib.METHODS[method], 0)
    sizes = _quantized_sizes(problem)
    result = []
    for name, dtype, element in (("q", torch.int8, 1), ("q_scale", torch.float32, 4), ("k", torch.int8, 1),
                                 ("k_scale", torch.float32, 4), ("vt", torch.int8, 1), ("v_scale", torch.float32, 4)):
        result.append((max(-(-getattr(sizes, name) // element), 1), dtype))
    return result


def _quantize_cuda(q, k, v, method, scale, layout, k_mean, v_amax):
    torch = _torch()
    views = [_view(x, name, layout, gpu=True) for x, name in ((q, "q"), (k, "k"), (v, "v"))]
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share one dtype on the GPU (q: {q.dtype}, k: {k.dtype}, v: {v.dtype})")
    if len({x.device for x in (q, k, v)}) != 1:
        raise ValueError(f"q, k and v are on different devices: {sorted(str(x.device) for x in (q, k, v))}")
    problem = _problem(*views, method, False, scale, layout)
    device = q.device
    shape = (problem.batch, problem.heads, problem.kv_heads, problem.query_length, problem.key_length, problem.head_dim)
    buffers = [_cuda_empty(torch, (count,), dtype, device, "the quantized inputs")
               for count, dtype in _quantized_buffers(torch, shape, method)]
    # Q's scales end in one byte of marks per query row, padded to whole floats: the padding
    # is zeroed, so that the buffers hold nothing unspecified (equal calls, equal tensors).
    if (problem.batch * problem.heads * problem.query_length) % 4:
        buffers[1][-1:].zero_()
    result = QuantizedInputs(method, *buffers, *shape, scale)
    statistics = [None, None]
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
    if grid is not None and not isinstance(grid, str):
        raise TypeError(f"grid must be None, 'persistent' or 'tiles', not {type(grid).__name__}")
    if grid not in _lib.GRIDS:
        raise ValueError(f"grid must be None, 'persistent' or 'tiles', not {grid!r}")
    if not isinstance(layout, str):
        raise TypeError(f"layout must be a string, 'bhnd' or 'bnhd', not {type(layout).__name__}")
    _check_layout(layout)
    for name, value in (("is_causal", is_causal), ("return_lse", return_lse)):
        if not _is_bool(value):
            raise TypeError(f"{name} must be True or False, not {value!r}")
    if not isinstance(inputs, QuantizedInputs):
        raise TypeError("attention_quantized takes the QuantizedInputs that quantize returns")
    torch = _torch()
    dtype = dtype or torch.float16
    if dtype not in (torch.float16, torch.bfloat16):
        raise TypeError(f"the output dtype must be torch.float16 or torch.bfloat16, not {dtype}")
    if _eager(inputs.q):
        return _attention_quantized_cuda(inputs, is_causal, dtype, layout, return_lse, grid)
    shape = [inputs.batch, inputs.heads, inputs.kv_heads, inputs.query_length, inputs.key_length, inputs.head_dim]
    out, lse = _ops().attention_quantized(
        inputs.q, inputs.q_scale, inputs.k, inputs.k_scale, inputs.vt, inputs.v_scale, inputs.method, shape,
        None if inputs.scale is None else float(inputs.scale), is_causal, dtype, layout, return_lse, grid)
    return (out, lse) if return_lse else out


def _attention_quantized_cuda(inputs, is_causal, dtype, layout, return_lse, grid):
    torch = _torch()
    inputs._validate(torch)
    device = inputs.q.device
    b, h, nq, d = inputs.batch, inputs.heads, inputs.query_length, inputs.head_dim
    out = _cuda_empty(torch, (b, h, nq, d) if layout == "bhnd" else (b, nq, h, d), dtype, device, "the output")
    lse = _cuda_empty(torch, (b, h, nq), torch.float32, device, "the log-sum-exp") if return_lse else None
    problem = inputs._problem(is_causal)
    source = inputs._c()
    options = _lib.Options.make(grid)
    _lib.check(_lib.library().intfa_attention_quantized(
        _lib.context(device.index), ctypes.byref(problem), ctypes.byref(options), ctypes.byref(source),
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
    tensors = (out, lse, part, part_lse)
    if not all(_is_torch(x) and x.is_cuda for x in tensors):
        raise TypeError("merge_partial takes CUDA torch tensors")
    if _eager(out):
        _merge_partial_cuda(out, lse, part, part_lse)
    else:
        _ops().merge_partial(out, lse, part, part_lse)


def _merge_partial_cuda(out, lse, part, part_lse):
    torch = _torch()
    tensors = (out, lse, part, part_lse)
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


if "torch" in sys.modules:
    _register_ops()
